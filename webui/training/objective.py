"""What every training stage of :mod:`webui.training.demo` (and :mod:`webui.training.networks`) shares: caption
tokenizing and the demo's settings of the diffusion objective (the objective itself is the engine's, shared with
the user-facing training in :mod:`webui.engine.training`)."""

from __future__ import annotations

import torch

from webui.engine.training.objective import denoise_loss, lr_at, sample_timesteps

__all__ = ["diffusion_loss", "lr_at", "sample_timesteps", "tokenize"]


def tokenize(tokenizer, captions) -> torch.Tensor:
    """Token ids [n, 77] of ``captions`` (padded, cut at 77 tokens like the CLIP text encoder)."""
    return tokenizer(list(captions), padding="max_length", max_length=77,
                     truncation=True, return_tensors="pt").input_ids


def diffusion_loss(unet, text_encoder, scheduler, latents, input_ids, generator,
                   offset_noise=0.1, max_weight=100.0, high_frac=0.0):
    """The epsilon objective weighted by clamp(1/SNR_t, 1, ``max_weight``) (see
    :func:`webui.engine.training.objective.denoise_loss`): in a side-by-side test on this data the text started to
    matter after ~300 steps with this weighting and not at all after 400 with min-SNR-5 weighting.
    ``max_weight=None`` gives the plain, unweighted loss."""
    cond = text_encoder(input_ids).last_hidden_state
    return denoise_loss(unet, scheduler, latents, cond, generator, offset_noise=offset_noise,
                        max_weight=max_weight, high_frac=high_frac)
