"""Live previews that cost almost nothing: a linear latent -> RGB map, fitted once per model from its own VAE.

Fixed published coefficients only fit the VAE they were made for; fitting the map (least squares between the
latents of a few encoded colour-block images and their colours) works for any VAE, the built-in model's included,
for one small encode per model.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from PIL import Image


class PreviewMap(NamedTuple):
    """A fitted latent -> RGB map (``LoadedModel.preview_map``) and the VAE it was fitted to."""
    weight: torch.Tensor  # [latent channels, 3]
    bias: torch.Tensor  # [3]
    vae: object  # refitted when the model's VAE is swapped


@torch.no_grad()
def fit_latent_rgb(vae, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode a few images of random flat colour blocks and fit latent -> block colour by least squares, so the
    map is fitted where real latents live (what the encoder produces), not on arbitrary noise."""
    param = next(vae.parameters())
    c = vae.config.latent_channels
    g = torch.Generator("cpu").manual_seed(seed)
    blocks = torch.rand((8, 3, 4, 4), generator=g) * 2 - 1  # colours in [-1, 1]
    images = torch.nn.functional.interpolate(blocks, scale_factor=16, mode="nearest")  # 64 px, 16 px blocks
    z = vae.encode(images.to(param.device, param.dtype)).latent_dist.mean.float().cpu() * vae.config.scaling_factor
    pooled = torch.nn.functional.adaptive_avg_pool2d(images, z.shape[-2:])
    x = torch.cat([z.permute(0, 2, 3, 1).reshape(-1, c), torch.ones(z[:, 0].numel(), 1)], dim=1)
    y = pooled.permute(0, 2, 3, 1).reshape(-1, 3)
    sol = torch.linalg.lstsq(x, y).solution  # [c + 1, 3]
    return sol[:c], sol[c]


def latent_preview(model, latents: torch.Tensor) -> Image.Image:
    """RGB preview of the first latent of a batch (at latent resolution, upscaled x8 for display)."""
    fit = model.preview_map
    if fit is None or fit.vae is not model.components["vae"]:
        weight, bias = fit_latent_rgb(model.components["vae"])
        fit = model.preview_map = PreviewMap(weight, bias, model.components["vae"])
    weight, bias = fit.weight, fit.bias
    lat = latents[0, : weight.shape[0]].float().cpu()
    rgb = torch.einsum("chw,cd->hwd", lat, weight) + bias
    arr = ((rgb / 2 + 0.5).clamp(0, 1) * 255).to(torch.uint8).numpy()
    h, w = arr.shape[:2]
    return Image.fromarray(arr).resize((w * 8, h * 8), Image.BILINEAR)
