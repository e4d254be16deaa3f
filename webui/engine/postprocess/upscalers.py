"""Upscalers: the built-in ones (None, Lanczos, Nearest) and model upscalers from A1111's folders (models/ESRGAN,
RealESRGAN, SwinIR, DAT, HAT, and --upscaler-dir), loaded with spandrel (plus spandrel_extra_arches), which knows
ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, OmniSR, SPAN and the rest of its architectures.

A `.pth` is read only with torch's weights-only loader (a pickle holding code is refused and nothing in it runs);
a file that is not an upscaler (a LoRA, a checkpoint, a face restorer) is an error naming it. Models run tiled
(settings `upscaler_tile`, `upscaler_tile_overlap`, A1111's ESRGAN_tile) so memory stays bounded, in fp16 on CUDA.
"""
from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.engine.checkpoints.loader import CheckpointLoadError, read_state_dict
from webui.engine.postprocess.tiles import run_tiled
from webui.engine.requests import NotFoundError, RequestError

log = logging.getLogger(__name__)

BUILTIN = {"None": Image.LANCZOS, "Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}  # "None": a plain resize
SUFFIXES = (".pth", ".pt", ".safetensors")


class UpscalerError(RequestError):
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
        found = {}
        for folder in self.folders:
            if folder.is_dir():
                for path in sorted(folder.rglob("*")):
                    if path.suffix.lower() in SUFFIXES and path.is_file():
                        found.setdefault(path.stem, UpscalerInfo(path.stem, path))
        self._models = found
        return list(found.values())

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
        device, dtype = self._placement(descriptor)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]

        def fn(tile: torch.Tensor) -> torch.Tensor:
            return descriptor(tile.to(device, dtype)).clamp(0, 1)

        y = run_tiled(fn, x, int(descriptor.scale), self.tile, self.overlap)
        return Image.fromarray((y[0].permute(1, 2, 0).float().numpy() * 255).round().astype(np.uint8))

    def _placement(self, descriptor) -> tuple[torch.device, torch.dtype]:
        device = getattr(self.device, "device", torch.device("cpu"))
        half = device.type == "cuda" and descriptor.supports_half
        descriptor.to(device)
        if half:
            descriptor.model.half()
        return device, torch.float16 if half else torch.float32

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
    import spandrel
    import spandrel_extra_arches

    try:
        state, _ = read_state_dict(path)
    except CheckpointLoadError as exc:
        raise UpscalerError(str(exc)) from None
    for key in ("params_ema", "params"):  # Real-ESRGAN's own files keep the weights one level down
        if isinstance(state.get(key), dict):
            state = state[key]
    registry = spandrel.ArchRegistry()  # our own: spandrel's global registry is left as it is
    registry.add(*spandrel.MAIN_REGISTRY, *spandrel_extra_arches.EXTRA_REGISTRY)
    try:
        descriptor = spandrel.ModelLoader(registry=registry).load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UpscalerError(f"{path.name}: not an upscaler model (its weights match no architecture spandrel "
                            f"knows; a LoRA or a checkpoint in an upscaler folder?)") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in ("SR", "Restoration"):
        raise UpscalerError(f"{path.name}: a {descriptor.architecture.name} model for {descriptor.purpose}, "
                            "not an upscaler")
    if not math.isfinite(float(descriptor.scale)) or descriptor.input_channels != 3:
        raise UpscalerError(f"{path.name}: not an RGB upscaler ({descriptor.input_channels} input channels)")
    descriptor.eval()
    log.info("upscaler %s: %s %sx", path.name, descriptor.architecture.name, descriptor.scale)
    return descriptor
