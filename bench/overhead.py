"""Our txt2img against a raw diffusers StableDiffusionPipeline on the same model, steps, sampler and size,
alternated in one run (so machine load affects both alike). Target ratio <= 1.03.

    python bench/overhead.py                                   # the built-in model at its native size
    python bench/overhead.py --ckpt bench/sd15-random-0.safetensors --size 256 --steps 10
"""
from __future__ import annotations

from side_by_side import NEGATIVE, PROMPT, alternate, engine_and_pipeline, parser


def main() -> None:
    p = parser("default: the model's native size")
    p.add_argument("--save", action="store_true", help="also save PNGs with infotext (ours only)")
    a = p.parse_args()

    import torch

    from webui.engine import GenerationRequest

    engine, model, raw = engine_and_pipeline(a.ckpt)
    w, h = (a.size, a.size) if a.size else model.spec.native_size

    def ours(seed):
        engine.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, steps=a.steps,
                                          sampler_name="Euler", scheduler="Normal", width=w, height=h,
                                          cfg_scale=7, save_images=a.save))

    def baseline(seed):
        raw(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=a.steps, guidance_scale=7, width=w, height=h,
            generator=torch.Generator("cpu").manual_seed(seed), output_type="pil")

    mo, mr = alternate(ours, baseline, a.rounds)
    print(f"model {model.title} ({model.spec.label}) {w}x{h}, {a.steps} steps Euler, CFG 7, device {engine.device.describe()}")
    print(f"raw diffusers: median {mr:.3f}s  ours: median {mo:.3f}s  ratio {mo / mr:.3f} (target <= 1.03)"
          f"{'  (ours includes saving PNG + infotext)' if a.save else ''}")
    engine.close()


if __name__ == "__main__":
    main()
