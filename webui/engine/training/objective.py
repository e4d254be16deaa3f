"""The diffusion training objective shared by every trainer (the built-in model's own training in webui.training
and the user-facing LoRA / embedding training here): timesteps, noise, loss weighting, learning-rate warm-up."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def lr_at(step, total, base, warmup=100):
    """Linear warm-up, then cosine decay to 10% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def sample_timesteps(b, generator, n_train=1000, high_frac=0.0, high_start=700):
    """Uniform timesteps; with ``high_frac`` > 0 that fraction of the batch is drawn from [high_start, n_train)
    instead (the very noisy steps, where layout and colours are decided)."""
    t = torch.randint(0, n_train, (b,), generator=generator)
    n_high = round(high_frac * b)
    if n_high:
        t[:n_high] = torch.randint(high_start, n_train, (n_high,), generator=generator)
    return t


def denoise_loss(unet, scheduler, latents, cond, generator, *, offset_noise=0.1, max_weight=None,
                 min_snr_gamma=None, high_frac=0.0, added_cond=None):
    """The diffusion objective for one batch of clean ``latents`` under the text conditioning ``cond``.

    A random timestep t per image mixes the latent with noise (x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps) and
    the UNet predicts eps (or v for v-prediction models). "Offset noise" (a per-channel constant) lets a model change
    an image's overall colour. Weighting of each image's error:
      - ``max_weight``: clamp(1/SNR_t, 1, max_weight), the x0 error on noisy steps (the built-in model's training:
        with plain eps-MSE the caption hardly matters on the noisy steps, where colours are decided);
      - ``min_snr_gamma``: Min-SNR-gamma (Hang et al. 2023, kohya's --min_snr_gamma);
      - neither: the plain MSE.
    The random draws (noise, offset, timesteps) come from ``generator`` in this order, on the CPU.
    """
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator)
    noise = noise + offset_noise * torch.randn((b, latents.shape[1], 1, 1), generator=generator)
    t = sample_timesteps(b, generator, scheduler.config.num_train_timesteps, high_frac)
    noise, t_dev = noise.to(latents.device, latents.dtype), t.to(latents.device)
    noisy = scheduler.add_noise(latents, noise, t_dev)
    if getattr(scheduler.config, "prediction_type", "epsilon") == "v_prediction":
        target = scheduler.get_velocity(latents, noise, t_dev)
    else:
        target = noise
    kwargs = {"added_cond_kwargs": added_cond} if added_cond is not None else {}
    pred = unet(noisy, t_dev, cond, **kwargs).sample.float()
    if max_weight is None and min_snr_gamma is None:
        return F.mse_loss(pred, target.float())
    abar = scheduler.alphas_cumprod[t].to(latents.device)
    snr = abar / (1 - abar)
    if max_weight is not None:
        weight = torch.clamp(1 / snr, min=1.0, max=max_weight)
    elif getattr(scheduler.config, "prediction_type", "epsilon") == "v_prediction":
        weight = torch.clamp(snr, max=min_snr_gamma) / (snr + 1)
    else:
        weight = torch.clamp(snr, max=min_snr_gamma) / snr
    per_image = F.mse_loss(pred, target.float(), reduction="none").mean(dim=(1, 2, 3))
    if max_weight is not None:
        return (weight * per_image).sum() / weight.sum()
    return (weight * per_image).mean()
