"""Tiled inference for image-to-image models (upscalers): the image is cut into overlapping tiles, each tile is run
alone, and the results are blended with weights that fall off towards each tile's edges, so memory stays bounded
by the tile size and seams do not show. Written here because spandrel loads models but does not tile."""
from __future__ import annotations

from typing import Callable

import torch


def starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins covering 0..length, the last one flush with the end."""
    if length <= tile:
        return [0]
    out = list(range(0, length - tile, step))
    return out + [length - tile]


def ramp(height: int, width: int, fade: int) -> torch.Tensor:
    """Blend weights: 1 inside, falling linearly to 1/(fade+1) over `fade` pixels at every edge (normalised later,
    so a pixel only one tile covers keeps its value whatever its weight)."""
    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return torch.clamp(torch.minimum(i + 1, n - i) / (fade + 1), max=1.0)

    return axis(height)[:, None] * axis(width)[None, :]


@torch.no_grad()
def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, scale: int, tile: int,
              overlap: int) -> torch.Tensor:
    """fn(image) for a (1, C, H, W) image, in tiles of `tile` pixels overlapping by `overlap` (tile <= 0: whole)."""
    _, channels, height, width = image.shape
    if tile <= 0 or (height <= tile and width <= tile):
        return fn(image)
    overlap = max(0, min(overlap, tile // 2))
    step = tile - overlap
    out = torch.zeros(1, channels, height * scale, width * scale, dtype=torch.float32)
    weight = torch.zeros(1, 1, height * scale, width * scale, dtype=torch.float32)
    for y in starts(height, tile, step):
        for x in starts(width, tile, step):
            patch = fn(image[:, :, y:y + tile, x:x + tile]).float().cpu()
            h, w = patch.shape[-2:]
            mask = ramp(h, w, overlap * scale)
            out[:, :, y * scale:y * scale + h, x * scale:x * scale + w] += patch * mask
            weight[:, :, y * scale:y * scale + h, x * scale:x * scale + w] += mask
    return out / weight
