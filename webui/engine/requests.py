"""Typed requests and results. Field names follow A1111's API where one exists."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill")


class RequestError(ValueError):
    """Bad input from the user: reported as is, nothing else happens."""


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
    mask: Image.Image | None = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    # what to run on and where it goes
    checkpoint: str | None = None  # title/name; None = the active one
    save_images: bool = True
    outpath: Path | None = None
    override_settings: dict[str, Any] = field(default_factory=dict)

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
        if not 0.0 <= self.subseed_strength <= 1.0:
            raise RequestError("subseed_strength must be between 0 and 1")
        if self.is_img2img and not 0.0 <= self.denoising_strength <= 1.0:
            raise RequestError("denoising_strength must be between 0 and 1")
        if self.resize_mode not in range(len(RESIZE_MODES)):
            raise RequestError(f"resize_mode must be one of 0..{len(RESIZE_MODES) - 1} ({', '.join(RESIZE_MODES)})")
        if self.clip_skip < 1 or self.clip_skip > 12:
            raise RequestError("clip_skip must be between 1 and 12")
        if self.cfg_scale < 0 or self.cfg_scale > 100:
            raise RequestError("cfg_scale must be between 0 and 100")


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
