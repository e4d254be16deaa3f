"""Upscalers: the built-in ones (None, Lanczos, Nearest) and model upscalers from A1111's folders (models/ESRGAN,
RealESRGAN, SwinIR, DAT, HAT, and --upscaler-dir), loaded with spandrel (plus spandrel_extra_arches), which knows
ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, OmniSR, SPAN and the rest of its architectures.

Files load through postprocess/image_models.py (weights only; a file that is not an upscaler is an error naming
it). Models run tiled (settings `upscaler_tile`, `upscaler_tile_overlap`, A1111's ESRGAN_tile) so memory stays bounded, in fp16 on CUDA.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.engine.postprocess.image_models import ModelFileError, list_model_files, load_image_model, place
from webui.engine.postprocess.tiles import run_tiled
from webui.engine.requests import NotFoundError

BUILTIN = {"None": Image.LANCZOS, "Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}  # "None": a plain resize


class UpscalerError(ModelFileError):
    """An upscaler file that cannot be used; the message names it."""


@dataclass(frozen=True)
class UpscalerInfo:
    name: str  # the file's stem, as A1111 lists it
    path: Path

    @property
    def scale_from_name(self) -> float | None:
        """"4x-UltraSharp", "RealESRGAN_x4plus": the scale their names give (listing never loads a model)."""
        match = re.search(r"(?:^|[^a-z0-9])x?(\d)x|x(\d)(?:[^0-9]|$)", self.name.lower())
        return float(match.group(1) or match.group(2)) if match else None

    def as_api(self, scale: float | None) -> dict:
        return {"name": self.name, "model_name": self.name, "model_path": str(self.path), "model_url": None,
                "scale": scale}


class UpscalerLibrary:
    def __init__(self, folders: list[Path], device=None, tile: int = 192, overlap: int = 8):
        self.folders = [Path(f) for f in folders]
        self.device = device  # DeviceConfig (None: CPU, float32)
        self.tile, self.overlap = tile, overlap
        self._models: dict[str, UpscalerInfo] = {}
        self._loaded: tuple[Path, object] | None = None  # the last model used stays in memory
        self._lock = threading.Lock()
        self.refresh()

    # ---- listing -------------------------------------------------------------------------------------------
    def refresh(self) -> list[UpscalerInfo]:
        self._models = {name: UpscalerInfo(name, path) for name, path in list_model_files(self.folders).items()}
        return list(self._models.values())

    def models(self) -> list[UpscalerInfo]:
        return list(self._models.values())

    def names(self) -> list[str]:
        return [*BUILTIN, *self._models]

    def resolve(self, name: str | None, field: str = "upscaler") -> str:
        """The listed name (case-insensitive; None/"" is "None"); NotFoundError naming the choices."""
        wanted = "None" if name in (None, "", "none") else str(name)
        for known in self.names():
            if known.lower() == wanted.lower():
                return known
        if self.refresh() and wanted in self._models:
            return wanted
        raise NotFoundError(f"{field}: upscaler {name!r} not found. Available upscalers: {', '.join(self.names())}")

    def scale_of(self, name: str) -> float | None:
        return None if name in BUILTIN else float(self._descriptor(self._models[name]).scale)

    # ---- upscaling -----------------------------------------------------------------------------------------
    def upscale(self, image: Image.Image, name: str, width: int, height: int) -> Image.Image:
        """`image` at width x height through the named upscaler. A model runs (repeatedly, like A1111) until the
        image is at least that big; a Lanczos resize makes it exact."""
        name = self.resolve(name)
        if name in BUILTIN:
            return image.resize((width, height), BUILTIN[name])
        descriptor = self._descriptor(self._models[name])
        out = image.convert("RGB")
        for _ in range(8):  # a 1x model runs once
            if out.width >= width and out.height >= height:
                break
            out = self._run(descriptor, out)
            if descriptor.scale == 1:
                break
        return out if out.size == (width, height) else out.resize((width, height), Image.LANCZOS)

    def _run(self, descriptor, image: Image.Image) -> Image.Image:
        device, dtype = place(descriptor, self.device)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]

        def fn(tile: torch.Tensor) -> torch.Tensor:
            return descriptor(tile.to(device, dtype)).clamp(0, 1)

        y = run_tiled(fn, x, int(descriptor.scale), self.tile, self.overlap)
        return Image.fromarray((y[0].permute(1, 2, 0).float().numpy() * 255).round().astype(np.uint8))

    def _descriptor(self, info: UpscalerInfo):
        with self._lock:
            if self._loaded is not None and self._loaded[0] == info.path:
                return self._loaded[1]
            self._loaded = None  # free the previous model first
            descriptor = load_upscaler(info.path)
            self._loaded = (info.path, descriptor)
            return descriptor


def load_upscaler(path: Path):
    """A spandrel image model from `path`, or UpscalerError naming the file."""
    try:
        descriptor = load_image_model(path, ("SR", "Restoration"), "an upscaler")
    except ModelFileError as exc:
        raise UpscalerError(str(exc)) from None
    if not math.isfinite(float(descriptor.scale)):
        raise UpscalerError(f"{path.name}: not an upscaler (scale {descriptor.scale})")
    return descriptor
