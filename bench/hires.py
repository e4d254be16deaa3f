"""Hires fix against doing it by hand with diffusers on the same model: txt2img to latents, a latent upscale, then
img2img on those latents, alternated in one run. Target ratio <= 1.03.

    python bench/hires.py                                          # the built-in model, 2x from its native size
    python bench/hires.py --ckpt bench/sd15-random-0.safetensors --size 256 --steps 10
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
    p.add_argument("--size", type=int, default=None, help="first pass size (default: the model's native size)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--denoise", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()

    import torch
    import torch.nn.functional as F
    from diffusers import EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    from webui.engine import Engine, GenerationRequest
    from webui.settings import ROOT, Settings

    extra = [Path(a.ckpt).resolve().parent] if a.ckpt and Path(a.ckpt).exists() else []
    engine = Engine(Settings(data_dir=ROOT, ckpt_dirs=extra, outputs_dir=Path(tempfile.mkdtemp())))
    model = engine.load_checkpoint(Path(a.ckpt).stem if a.ckpt else None)
    w, h = (a.size, a.size) if a.size else model.spec.native_size
    prompt, negative = "a small red circle at the top left on a blue background", "green"
    comps = {k: model.components[k] for k in ("unet", "vae", "text_encoder", "tokenizer")}
    txt = StableDiffusionPipeline(**comps, scheduler=EulerDiscreteScheduler.from_config(model.scheduler_config),
                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    img = StableDiffusionImg2ImgPipeline.from_pipe(txt)
    for pipe in (txt, img):
        pipe.set_progress_bar_config(disable=True)

    def ours(seed):
        engine.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, steps=a.steps,
                                          sampler_name="Euler", scheduler="Normal", width=w, height=h, cfg_scale=7,
                                          enable_hr=True, hr_scale=2.0, hr_upscaler="Latent",
                                          denoising_strength=a.denoise, save_images=False))

    def by_hand(seed):
        g = torch.Generator("cpu").manual_seed(seed)
        latents = txt(prompt, negative_prompt=negative, num_inference_steps=a.steps, guidance_scale=7, width=w,
                      height=h, generator=g, output_type="latent").images
        latents = F.interpolate(latents, scale_factor=2, mode="bilinear")
        img(prompt, negative_prompt=negative, image=latents, strength=a.denoise, num_inference_steps=a.steps,
            guidance_scale=7, generator=g, output_type="pil")

    ours(0), by_hand(0)  # warm-up
    t_ours, t_hand = [], []
    for r in range(a.rounds):
        for fn, acc in ((ours, t_ours), (by_hand, t_hand)) if r % 2 == 0 else ((by_hand, t_hand), (ours, t_ours)):
            t = time.perf_counter()
            fn(r + 1)
            acc.append(time.perf_counter() - t)
    mo, mh = statistics.median(t_ours), statistics.median(t_hand)
    print(f"model {model.title} ({model.spec.label}) {w}x{h} -> {2 * w}x{2 * h}, {a.steps} steps Euler, "
          f"denoise {a.denoise}, device {engine.device.describe()}")
    print(f"by hand (diffusers): median {mh:.3f}s  ours: median {mo:.3f}s  ratio {mo / mh:.3f} (target <= 1.03)")
    engine.close()


if __name__ == "__main__":
    main()
