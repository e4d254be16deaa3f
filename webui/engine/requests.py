"""Typed requests and results. Field names follow A1111's API where one exists."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from webui.engine.errors import EngineError
from webui.engine.inpaint import MASKED_CONTENT, MAX_MASK_BLUR

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill")

#: Longest prompt / negative prompt, in characters. A1111 has no hard cap, but past CLIP's 75-token chunks a giant
#: prompt only costs time (a 1 MB prompt held the worker for 157 s); 32768 characters is far more than any real
#: prompt (thousands of tokens); on a CPU it adds about 4 s to a job with the built-in model (a 1 MB one: minutes).
MAX_PROMPT_CHARS = 32768
#: Largest seed: a signed 64-bit integer, so that seed + image index stays within what torch.manual_seed takes
#: (2**64 - 1) and within int64 wherever a seed is stored. A1111's random seeds are below 2**32.
MAX_SEED_VALUE = 2**63 - 1


class RequestError(EngineError, ValueError):
    """Bad input from the user: reported as is, nothing else happens."""


class NotFoundError(RequestError):
    """Bad input that names something that does not exist (a LoRA, a VAE, a checkpoint ...): 404 in the API."""


LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: JSON can carry them, UTF-8 cannot


def check_text(name: str, value: object, max_chars: int = MAX_PROMPT_CHARS) -> None:
    """RequestError naming ``name`` unless ``value`` is a string of at most ``max_chars`` characters that can be
    encoded as UTF-8 (a lone surrogate, e.g. JSON "\\ud800", cannot: it would fail later, deep in a job)."""
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text (got {type(value).__name__})")
    if len(value) > max_chars:
        raise RequestError(f"{name} is too long ({len(value)} characters; at most {max_chars})")
    bad = LONE_SURROGATE.search(value)
    if bad is not None:
        raise RequestError(f"{name} contains a lone surrogate (U+{ord(bad.group()):04X} at position {bad.start()}), "
                           f"which is not valid Unicode text")


def _check_number(name: str, value: object, lo: float = -math.inf, hi: float = math.inf) -> None:
    """RequestError naming ``name`` unless ``value`` is a finite number in [lo, hi] (checked explicitly: NaN fails
    every comparison, so a test like ``value < lo or value > hi`` lets it through)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not lo <= value <= hi:
        bounds = f" between {lo:g} and {hi:g}" if math.isfinite(lo) and math.isfinite(hi) else ""
        raise RequestError(f"{name} must be a finite number{bounds} (got {value!r})")


def _check_integer(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise RequestError(f"{name} must be an integer from {lo} to {hi} (got {value!r})")


def _check_seed(name: str, value: object, n_images: int) -> None:
    """Image k of a job uses seed + k: the last one must still be a valid seed."""
    top = MAX_SEED_VALUE - (n_images - 1)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -1 <= value <= top:
        raise RequestError(f"{name} must be -1 (random) or an integer from 0 to {top} (got {value!r})")


@dataclass
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] = field(default_factory=list)
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    sampler_name: str | None = None
    scheduler: str | None = None
    steps: int = 20
    cfg_scale: float = 7.0
    width: int | None = None  # None: the model's native size
    height: int | None = None
    batch_size: int = 1
    n_iter: int = 1
    clip_skip: int = 1
    eta: float | None = None
    combinatorial: bool = False  # wildcards: one image per combination instead of random picks
    # img2img
    init_images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None  # white = repaint (or an RGBA mask's opaque part)
    resize_mode: int = 0
    denoising_strength: float = 0.75
    # inpainting, when `mask` is given (A1111's names and meanings; defaults as A1111's img2img tab)
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 1  # masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = False  # inpaint area: False whole picture, True only masked
    inpaint_full_res_padding: int = 32  # only masked: pixels around the mask
    inpainting_mask_invert: int = 0  # 1: repaint what is not masked
    # hires fix (txt2img): a second pass at a larger size (A1111's names; denoising_strength is its strength)
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize_x: int = 0  # 0: hr_scale decides (one of x/y 0: keep the aspect)
    hr_resize_y: int = 0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0  # 0: the first pass's steps
    hr_sampler_name: str | None = None  # None / "Use same sampler"
    hr_scheduler: str | None = None
    hr_cfg: float | None = None  # None: cfg_scale
    hr_prompt: str = ""  # "": the prompt
    hr_negative_prompt: str = ""
    hr_checkpoint_name: str | None = None  # None / "Use same checkpoint"
    tiling: bool = False  # seamless: opposite edges continue each other
    restore_faces: bool = False  # with the face_restoration_model setting (override_settings may name another)
    # what to run on and where it goes
    checkpoint: str | None = None  # title/name; None = the active one
    save_images: bool = True
    outpath: Path | None = None
    override_settings: dict[str, Any] = field(default_factory=dict)
    # scripts (A1111's Script dropdown / script_name + script_args): the job is run by that script, which runs
    # sub-generations of this request through the same planning and stages
    script_name: str | None = None
    script_args: list[Any] = field(default_factory=list)
    extra_generation_params: dict[str, Any] = field(default_factory=dict)  # added to every image's infotext
    # sd-webui-controlnet's units (webui.engine.controlnet.units.ControlNetUnit; A1111: alwayson_scripts.controlnet)
    controlnet_units: list[Any] = field(default_factory=list)
    # A1111's batch grid (the UI's; the API's when it saves; not the scripts' sub-generations): with more than one
    # image, a grid of them saved (setting grid_save) and put first among the results (setting return_grid)
    batch_grid: bool = False

    @property
    def is_img2img(self) -> bool:
        return bool(self.init_images)

    def validate(self, max_side: int, max_images: int) -> None:
        if not isinstance(self.steps, int) or self.steps < 1 or self.steps > 1000:
            raise RequestError(f"steps must be between 1 and 1000 (got {self.steps})")
        if self.batch_size < 1 or self.n_iter < 1:
            raise RequestError("batch_size and n_iter must be at least 1")
        if self.batch_size * self.n_iter > max_images:
            raise RequestError(f"batch_size x n_iter = {self.batch_size * self.n_iter} exceeds the limit of {max_images} images")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is None:
                continue
            if v < 64 or v > max_side:
                raise RequestError(f"{name} must be between 64 and {max_side} (got {v})")
            if v % 8:
                raise RequestError(f"{name} must be a multiple of 8 (got {v})")
        check_text("prompt", self.prompt)
        check_text("negative_prompt", self.negative_prompt)
        for name in ("seed", "subseed"):
            _check_seed(name, getattr(self, name), self.batch_size * self.n_iter)
        _check_number("subseed_strength", self.subseed_strength, 0.0, 1.0)
        if self.is_img2img:
            _check_number("denoising_strength", self.denoising_strength, 0.0, 1.0)
        if self.eta is not None:
            _check_number("eta", self.eta)
        if self.resize_mode not in range(len(RESIZE_MODES)):
            raise RequestError(f"resize_mode must be one of 0..{len(RESIZE_MODES) - 1} ({', '.join(RESIZE_MODES)})")
        if self.clip_skip < 1 or self.clip_skip > 12:
            raise RequestError("clip_skip must be between 1 and 12")
        _check_number("cfg_scale", self.cfg_scale, 0.0, 100.0)
        if self.mask is not None:
            self._validate_inpaint()

    def _validate_inpaint(self) -> None:
        if not self.is_img2img:
            raise RequestError("mask: inpainting needs an init image")
        for name in ("mask_blur_x", "mask_blur_y"):
            _check_integer(name, getattr(self, name), 0, MAX_MASK_BLUR)
        _check_integer("inpainting_fill", self.inpainting_fill, 0, len(MASKED_CONTENT) - 1)
        _check_integer("inpaint_full_res_padding", self.inpaint_full_res_padding, 0, 4096)
        _check_integer("inpainting_mask_invert", self.inpainting_mask_invert, 0, 1)


@dataclass
class GenerationResult:
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    width: int = 0
    height: int = 0
    model_title: str = ""
    interrupted: bool = False
    skipped: int = 0  # images dropped by Skip
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # infotext parameters shared by all images
    # grids come first in `images` (with `infotexts`, `seeds` ... aligned: a grid has its first image's seed);
    # this many of them (A1111's index_of_first_image)
    index_of_first_image: int = 0
