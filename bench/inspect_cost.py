"""What Inspect costs (issue 21), measured side by side in one run on the same model, steps and size:

* inspection off: a plain generation installs no hooks (no capture processor, the UNet's processors untouched)
  and runs as fast as before: plain `Engine.generate` against a raw diffusers pipeline (the ratio of
  bench/overhead.py), and against an Inspect run with everything off;
* inspection on: per-step capture, then attention capture on all cross-attention layers, as ratios to plain;
* attention memory stays bounded: the maps kept are one running sum [tokens, latent h, latent w] whatever the
  number of steps (10 vs 40 steps), growing only with the latent's area; on CUDA also the peak allocated memory.

    python bench/inspect_cost.py                       # the built-in model at its native size
    python bench/inspect_cost.py --size 256 --steps 20 --rounds 5
"""
from __future__ import annotations

import sys
from pathlib import Path

# this file is named like the standard library's `inspect`: keep its folder behind the standard library
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from side_by_side import NEGATIVE, PROMPT, alternate, engine_and_pipeline, parser


def main() -> None:
    p = parser("default: the model's native size")
    a = p.parse_args()

    import torch

    from webui.engine import GenerationRequest, InspectRequest

    engine, model, raw = engine_and_pipeline(a.ckpt)
    w, h = (a.size, a.size) if a.size else model.spec.native_size
    unet = model.components["unet"]

    def request(seed, steps=a.steps, size=(w, h)):
        return GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, steps=steps,
                                 sampler_name="Euler", scheduler="Normal", width=size[0], height=size[1],
                                 cfg_scale=7, save_images=False)

    seen = []
    engine.hooks.add("step", lambda state, i, lat: seen.append(
        sum(type(p).__name__ == "CaptureProcessor" for p in unet.attn_processors.values())), 0, _Owner())
    before = dict(unet.attn_processors)

    def plain(seed):
        engine.generate(request(seed))

    def baseline(seed):
        raw(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=a.steps, guidance_scale=7, width=w, height=h,
            generator=torch.Generator("cpu").manual_seed(seed), output_type="pil")

    def inspect_with(**options):
        return lambda seed: engine.inspect(InspectRequest(request(seed), save=False, **options))

    print(f"model {model.title} {w}x{h}, {a.steps} steps Euler, CFG 7, device {engine.device.describe()}")
    m_plain, m_raw = alternate(plain, baseline, a.rounds)
    hooks_seen = max(seen, default=0)
    same = all(unet.attn_processors[k] is v for k, v in before.items())
    print(f"inspection off: plain {m_plain:.3f}s vs raw diffusers {m_raw:.3f}s, ratio {m_plain / m_raw:.3f} "
          f"(target <= 1.03); capture processors seen during plain runs: {hooks_seen}; processors untouched: {same}")
    for label, options in (("everything off", {"record_steps": False, "attention": False}),
                           ("steps recorded (preview decode)", {"attention": False}),
                           ("steps + attention (all layers)", {})):
        m_on, m_p = alternate(inspect_with(**options), plain, a.rounds)
        print(f"inspect, {label}: {m_on:.3f}s vs plain {m_p:.3f}s, ratio {m_on / m_p:.2f}")

    cuda = engine.device.device.type == "cuda"
    for steps, size in ((10, (w, h)), (40, (w, h)), (10, (w * 2, h * 2))):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        res = engine.inspect(InspectRequest(request(1, steps, size), record_steps=False, save=False))
        info = res.attention_info
        peak = f", peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else ""
        print(f"attention maps kept, {steps} steps at {size[0]}x{size[1]}: {info['bytes'] / 1024:.1f} KiB "
              f"({len(res.tokens.chunks)} x 77 tokens x {info['latent_size'][0]}x{info['latent_size'][1]}), "
              f"{info['calls']} layer calls averaged{peak}")
    engine.close()


class _Owner:
    name, active = "bench", True


if __name__ == "__main__":
    main()
