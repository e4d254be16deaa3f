"""Seeds and initial noise, reproducible on any device: noise is drawn on the CPU per image seed (A1111's
"RNG: CPU"), so a seed gives the same image on CPU, CUDA and MPS."""
from __future__ import annotations

import random

import torch

MAX_SEED = 4294967294


def fix_seed(seed: int | None) -> int:
    if seed is None or int(seed) == -1:
        return random.randrange(MAX_SEED)
    return int(seed)


def seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (falls back to a straight line when nearly parallel)."""
    lo, hi = low.flatten(), high.flatten()
    cos = torch.dot(lo / lo.norm(), hi / hi.norm()).clamp(-1.0, 1.0)
    if cos.abs() > 0.9995:
        return (1 - t) * low + t * high
    omega = torch.acos(cos)
    so = torch.sin(omega)
    return (torch.sin((1.0 - t) * omega) / so) * low + (torch.sin(t * omega) / so) * high


def image_noise(seeds: list[int], subseeds: list[int], subseed_strength: float, shape: tuple[int, ...]) -> torch.Tensor:
    """Batch of initial noise [len(seeds), *shape]; with a variation seed, each is slerped toward its subseed's noise."""
    out = []
    for seed, sub in zip(seeds, subseeds):
        n = seed_noise(seed, shape)
        if subseed_strength > 0:
            n = slerp(subseed_strength, n, seed_noise(sub, shape))
        out.append(n)
    return torch.stack(out)


def generators(seeds: list[int]) -> list[torch.Generator]:
    """Per-image CPU generators for the sampler's own noise (ancestral / SDE steps, img2img noise)."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
