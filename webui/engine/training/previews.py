"""Sample images during training: a diffusers pipeline over the training copies (with their adapters or injected
vectors active) and the model's VAE, at a fixed prompt and seed, so the images show what changes."""
from __future__ import annotations

import torch


def sample_pipeline(model, unet, encoders: list, tokenizers: list):
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    scheduler = EulerDiscreteScheduler.from_config(model.scheduler_config)
    vae = model.components["vae"]
    if model.family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1],
                                         tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=unet,
                                         scheduler=scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoders[0], tokenizer=tokenizers[0], unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_image(pipe, prompt: str, seed: int, steps: int, size: tuple[int, int], device, autocast):
    """One image (PIL) of `prompt` at `seed`; the modules are put in eval mode for it and back afterwards."""
    modules = [m for m in (pipe.unet, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if m is not None]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        generator = torch.Generator("cpu").manual_seed(seed)
        with autocast():
            out = pipe(prompt, num_inference_steps=steps, guidance_scale=7.0, generator=generator,
                       width=size[0], height=size[1], output_type="pil")
        return out.images[0]
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
