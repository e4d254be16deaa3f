"""Hires fix, as A1111 does it: a first pass at the base size, an upscale (in latent space for the "Latent" modes,
in pixels for the others), and a second pass as img2img at the target size, on the same loaded components or on
another checkpoint (hr_checkpoint_name).

This module holds the sizes, the upscalers and the infotext; the second-pass stage is in webui/engine/stages.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from webui.engine.requests import GenerationRequest, RequestError
from webui.engine.samplers import SamplerChoice

if TYPE_CHECKING:
    from webui.engine.checkpoints.registry import CheckpointInfo

# A1111's latent upscale modes: name -> (torch interpolation mode, antialias)
LATENT_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
SAME = ("", "Use same sampler", "Use same scheduler", "Use same checkpoint")


@dataclass
class HiresPlan:
    """The second pass, resolved when the job is planned (the target size waits for the model's native size)."""
    upscaler: str  # a LATENT_MODES name, or an upscaler of the UpscalerLibrary (pixels)
    steps: int  # the second pass's sampling steps (A1111: 0 = the first pass's)
    sampler: SamplerChoice
    cfg_scale: float
    denoising_strength: float
    checkpoint: CheckpointInfo | None = None  # hr_checkpoint_name: another checkpoint (None: the first pass's)

    @property
    def latent(self) -> bool:
        return self.upscaler in LATENT_MODES


def upscaler_name(name: str | None, upscalers) -> str:
    """A1111's hires upscaler name, case-insensitively: a latent mode or one of `upscalers` (an UpscalerLibrary);
    RequestError naming the ones there are."""
    wanted = (name or "Latent").strip()
    for known in LATENT_MODES:
        if known.lower() == wanted.lower():
            return known
    try:
        return upscalers.resolve(wanted, "hr_upscaler")
    except RequestError:
        raise RequestError(f"hr_upscaler: {name!r} not found. Available: "
                           f"{', '.join([*LATENT_MODES, *upscalers.names()])}") from None


def same(value: str | None) -> bool:
    return value is None or value in SAME


def target_size(req: GenerationRequest, width: int, height: int, max_side: int) -> tuple[int, int]:
    """The second pass's size, as A1111 computes it: hr_resize_x/y when given (one of them 0: keep the aspect),
    else width/height times hr_scale; rounded down to a multiple of 8 (the latent is 1/8 of the image)."""
    rx, ry = int(req.hr_resize_x or 0), int(req.hr_resize_y or 0)
    if rx and ry:
        w, h = rx, ry
    elif rx:
        w, h = rx, rx * height / width
    elif ry:
        w, h = ry * width / height, ry
    else:
        w, h = width * req.hr_scale, height * req.hr_scale
    w, h = int(w) // 8 * 8, int(h) // 8 * 8
    if not 64 <= min(w, h) or max(w, h) > max_side:
        raise RequestError(f"hires fix: the second pass would be {w}x{h}; each side must be from 64 to {max_side}")
    return w, h


def check_fields(req: GenerationRequest) -> None:
    """What can be checked before the model is known."""
    if req.is_img2img:
        raise RequestError("enable_hr: hires fix is for txt2img (img2img already starts from an image)")
    if not (isinstance(req.hr_scale, (int, float)) and math.isfinite(req.hr_scale) and 1.0 <= req.hr_scale <= 8.0):
        raise RequestError(f"hr_scale must be a number from 1 to 8 (got {req.hr_scale!r})")
    for name in ("hr_resize_x", "hr_resize_y", "hr_second_pass_steps"):
        value = getattr(req, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16384:
            raise RequestError(f"{name} must be a whole number from 0 (unset) to 16384 (got {value!r})")
    if req.hr_cfg is not None and not (isinstance(req.hr_cfg, (int, float)) and math.isfinite(req.hr_cfg)
                                       and 0 <= req.hr_cfg <= 100):
        raise RequestError(f"hr_cfg must be a number from 0 to 100 (got {req.hr_cfg!r})")


def upscale_latents(latents: torch.Tensor, mode: str, width: int, height: int) -> torch.Tensor:
    interpolation, antialias = LATENT_MODES[mode]
    return F.interpolate(latents, size=(height // 8, width // 8), mode=interpolation, antialias=antialias)


def infotext_params(req: GenerationRequest, hires: HiresPlan, first_sampler: SamplerChoice) -> dict:
    """A1111's keys for the second pass (None = left out)."""
    resize = req.hr_resize_x or req.hr_resize_y
    changed = (hires.sampler.sampler.name, hires.sampler.schedule) != (first_sampler.sampler.name,
                                                                       first_sampler.schedule)
    return {
        "Denoising strength": hires.denoising_strength,
        "Hires upscale": None if resize else req.hr_scale,
        "Hires resize": f"{req.hr_resize_x}x{req.hr_resize_y}" if resize else None,
        "Hires steps": req.hr_second_pass_steps or None, "Hires upscaler": hires.upscaler,
        "Hires sampler": hires.sampler.sampler.name if changed else None,
        "Hires schedule type": hires.sampler.schedule if changed else None,
        "Hires CFG Scale": req.hr_cfg if req.hr_cfg is not None else None,
        "Hires prompt": req.hr_prompt or None, "Hires negative prompt": req.hr_negative_prompt or None,
        "Hires checkpoint": short_title(hires.checkpoint) if hires.checkpoint else None,
    }


def short_title(info: CheckpointInfo) -> str:
    """A1111's short title of a checkpoint, as its infotext names the hires checkpoint: `name [hash]`."""
    return f"{info.model_name} [{info.shorthash}]" if info.shorthash else info.model_name
