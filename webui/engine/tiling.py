"""Seamless tiling (A1111's "Tiling"): images whose opposite edges continue each other.

Every 2-D convolution of the UNet and the VAE pads circularly for the duration of one job, so each pixel's
neighbourhood wraps around the image border and the picture tiles without seams. Only per-instance state changes:
``Conv2d.padding_mode``, which PyTorch reads on every forward (``_conv_forward`` pads with
``_reversed_padding_repeated_twice`` when the mode is not "zeros"; that tuple is computed in ``__init__`` whatever
the mode, so switching the attribute later is enough). No class is patched, nothing global is touched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

# The components A1111 tiles: the denoiser and the decoder/encoder. Text encoders have no spatial convolutions.
TILED_COMPONENTS = ("unet", "vae")


def tiled_modules(target) -> list[torch.nn.Module]:
    """The modules to tile for a target: a torch module itself, or a LoadedModel's UNet and VAE."""
    if isinstance(target, torch.nn.Module):
        return [target]
    components = target.components
    return [components[k] for k in TILED_COMPONENTS if isinstance(components.get(k), torch.nn.Module)]


def conv2d_layers(*targets) -> list[torch.nn.Conv2d]:
    """Every Conv2d inside the targets that pads at all, once each. `modules()` reaches into wrappers, so the real
    conv of a PEFT LoRA layer (its `.base_layer`) is included; a conv shared by two targets is listed once. Convs
    without padding (1x1 projections) are left out: a circular pad of 0 changes nothing but costs a copy."""
    found: dict[int, torch.nn.Conv2d] = {}
    for target in targets:
        for module in tiled_modules(target):
            for m in module.modules():
                if isinstance(m, torch.nn.Conv2d) and _pads(m):
                    found.setdefault(id(m), m)
    return list(found.values())


def _pads(conv: torch.nn.Conv2d) -> bool:
    # `padding` is a tuple of ints, or the string "same" / "valid".
    return conv.padding == "same" or (conv.padding != "valid" and any(conv.padding))


@contextmanager
def seamless(*targets, enabled: bool = True) -> Iterator[list[torch.nn.Conv2d]]:
    """Make every Conv2d of the targets (torch modules, or LoadedModels: their UNet and VAE) pad circularly
    inside the block, and give each conv back its own padding mode afterwards, also when the block raises or is
    interrupted. Nesting is safe: each level restores what it found. `enabled=False` changes nothing, so callers
    can write one `with` for jobs with and without tiling. Yields the convs it switched."""
    convs = conv2d_layers(*targets) if enabled else []
    saved = [(conv, conv.padding_mode) for conv in convs]
    try:
        for conv in convs:
            conv.padding_mode = "circular"
        yield convs
    finally:
        for conv, mode in saved:
            conv.padding_mode = mode
