"""Our txt2img against a raw diffusers StableDiffusionPipeline on the same model, steps, sampler and size,
alternated in one run (so machine load affects both alike). Target ratio <= 1.03.

    python bench/overhead.py                                   # the built-in model at its native size
    python bench/overhead.py --ckpt bench/sd15-random-0.safetensors --size 256 --steps 10
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default=None, help="checkpoint path or title (default: the built-in model)")
    p.add_argument("--size", type=int, default=None, help="default: the model's native size")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--save", action="store_true", help="also save PNGs with infotext (ours only)")
    a = p.parse_args()

    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from webui.engine.facade import Engine
    from webui.engine.requests import GenerationRequest
    from webui.settings import ROOT, Settings

    extra = [Path(a.ckpt).resolve().parent] if a.ckpt and Path(a.ckpt).exists() else []
    engine = Engine(Settings(data_dir=ROOT, ckpt_dirs=extra, outputs_dir=Path(tempfile.mkdtemp())))
    model = engine.load_checkpoint(Path(a.ckpt).stem if a.ckpt else None)
    w, h = (a.size, a.size) if a.size else model.spec.native_size
    prompt, negative = "a small red circle at the top left on a blue background", "green"
    comps = {k: model.components[k] for k in ("unet", "vae", "text_encoder", "tokenizer")}
    raw = StableDiffusionPipeline(**comps, scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config),
                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    raw.set_progress_bar_config(disable=True)

    def ours(seed):
        engine.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, steps=a.steps,
                                          sampler_name="Euler", scheduler="Normal", width=w, height=h,
                                          cfg_scale=7, save_images=a.save))

    def baseline(seed):
        g = torch.Generator("cpu").manual_seed(seed)
        raw(prompt, negative_prompt=negative, num_inference_steps=a.steps, guidance_scale=7, width=w, height=h,
            generator=g, output_type="pil")

    ours(0), baseline(0)  # warm-up
    t_ours, t_raw = [], []
    for r in range(a.rounds):
        for fn, acc in ((ours, t_ours), (baseline, t_raw)) if r % 2 == 0 else ((baseline, t_raw), (ours, t_ours)):
            t = time.perf_counter()
            fn(r + 1)
            acc.append(time.perf_counter() - t)
    mo, mr = statistics.median(t_ours), statistics.median(t_raw)
    print(f"model {model.title} ({model.spec.label}) {w}x{h}, {a.steps} steps Euler, CFG 7, device {engine.device.describe()}")
    print(f"raw diffusers: median {mr:.3f}s  ours: median {mo:.3f}s  ratio {mo / mr:.3f} (target <= 1.03)"
          f"{'  (ours includes saving PNG + infotext)' if a.save else ''}")
    engine.close()


if __name__ == "__main__":
    main()
