"""Faster UNet and VAE decoder for the loaded model, chosen once at start-up (`DeviceConfig.accelerator`):
`--compile` (torch.compile, compiled.py) or `--backend openvino` (OpenVINO on the CPU, openvino.py).

The diffusers pipelines keep running the sampling loop (our samplers, prompt weighting, step callback), so nothing
else changes: for one pipeline call the pipeline's `unet` is the accelerated module (same call, same outputs),
and decoding one latent goes through the accelerated decoder. What each accelerator builds is kept on the model
(`LoadedModel.accelerated`), so it leaves the RAM cache with the model."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Protocol

import torch


class Accelerator(Protocol):
    name: str

    def unet(self, model) -> torch.nn.Module | None:
        """The module to call as the pipeline's UNet for this model (None: the model's own)."""

    def decoder(self, model, vae) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """scaled latents (1, C, h, w) -> image (-1..1); None: the plain VAE decode."""


@contextmanager
def accelerated_unet(model, accelerator: Accelerator | None, pipe):
    """The pipeline calls the accelerated UNet inside this block; its own UNet is put back after."""
    module = accelerator.unet(model) if accelerator is not None else None
    if module is None:
        yield
        return
    original = pipe.unet
    pipe.unet = module
    try:
        yield
    finally:
        pipe.unet = original


def accelerated_decoder(model, accelerator: Accelerator | None, vae, tiled: bool):
    """The accelerated decode for this VAE, or None (tiled decodes stay on PyTorch: they run in many pieces)."""
    if accelerator is None or tiled:
        return None
    return accelerator.decoder(model, vae)
