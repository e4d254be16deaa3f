"""Hires fix against doing it by hand with diffusers on the same model: txt2img to latents, a latent upscale, then
img2img on those latents, alternated in one run. Target ratio <= 1.03.

    python bench/hires.py                                          # the built-in model, 2x from its native size
    python bench/hires.py --ckpt bench/sd15-random-0.safetensors --size 256 --steps 10
"""
from __future__ import annotations

from side_by_side import NEGATIVE, PROMPT, alternate, engine_and_pipeline, parser


def main() -> None:
    p = parser("first pass size (default: the model's native size)")
    p.add_argument("--denoise", type=float, default=0.5)
    a = p.parse_args()

    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionImg2ImgPipeline

    from webui.engine import GenerationRequest

    engine, model, txt = engine_and_pipeline(a.ckpt)
    img = StableDiffusionImg2ImgPipeline.from_pipe(txt)
    img.set_progress_bar_config(disable=True)
    w, h = (a.size, a.size) if a.size else model.spec.native_size

    def ours(seed):
        engine.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, steps=a.steps,
                                          sampler_name="Euler", scheduler="Normal", width=w, height=h, cfg_scale=7,
                                          enable_hr=True, hr_scale=2.0, hr_upscaler="Latent",
                                          denoising_strength=a.denoise, save_images=False))

    def by_hand(seed):
        g = torch.Generator("cpu").manual_seed(seed)
        latents = txt(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=a.steps, guidance_scale=7, width=w,
                      height=h, generator=g, output_type="latent").images
        latents = F.interpolate(latents, scale_factor=2, mode="bilinear")
        img(PROMPT, negative_prompt=NEGATIVE, image=latents, strength=a.denoise, num_inference_steps=a.steps,
            guidance_scale=7, generator=g, output_type="pil")

    mo, mh = alternate(ours, by_hand, a.rounds)
    print(f"model {model.title} ({model.spec.label}) {w}x{h} -> {2 * w}x{2 * h}, {a.steps} steps Euler, "
          f"denoise {a.denoise}, device {engine.device.describe()}")
    print(f"by hand (diffusers): median {mh:.3f}s  ours: median {mo:.3f}s  ratio {mo / mh:.3f} (target <= 1.03)")
    engine.close()


if __name__ == "__main__":
    main()
