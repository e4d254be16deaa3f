"""Image-to-image model files (upscalers, face restorers) loaded with spandrel and spandrel_extra_arches, which
know ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, GFPGAN, CodeFormer, RestoreFormer and the rest of their architectures.

A `.pth` is read only with torch's weights-only loader (a pickle holding code is refused and nothing in it runs);
a file of another kind (a LoRA, a checkpoint, an upscaler in a face folder) is an error naming it."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from webui.engine.checkpoints.loader import CheckpointLoadError, read_state_dict
from webui.engine.requests import RequestError

log = logging.getLogger(__name__)

SUFFIXES = (".pth", ".pt", ".safetensors")


class ModelFileError(RequestError):
    """A model file that cannot be used; the message names it."""


def load_image_model(path: Path, purposes: tuple[str, ...], what: str):
    """A spandrel ImageModelDescriptor from `path` whose purpose is one of `purposes` ("SR", "Restoration",
    "FaceSR"), in eval mode; ModelFileError naming the file otherwise. `what`: "an upscaler", "a face restorer"."""
    import spandrel
    import spandrel_extra_arches

    try:
        state, _ = read_state_dict(path)
    except CheckpointLoadError as exc:
        raise ModelFileError(str(exc)) from None
    registry = spandrel.ArchRegistry()  # our own: spandrel's global registry is left as it is
    registry.add(*spandrel.MAIN_REGISTRY, *spandrel_extra_arches.EXTRA_REGISTRY)
    try:
        descriptor = spandrel.ModelLoader(registry=registry).load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise ModelFileError(f"{path.name}: not {what} model (its weights match no architecture spandrel knows; "
                             "a LoRA or a checkpoint in the wrong folder?)") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in purposes:
        raise ModelFileError(f"{path.name}: a {descriptor.architecture.name} model for {descriptor.purpose}, "
                             f"not {what}")
    if descriptor.input_channels != 3:
        raise ModelFileError(f"{path.name}: not an RGB model ({descriptor.input_channels} input channels)")
    descriptor.eval()
    log.info("%s: %s (%s)", path.name, descriptor.architecture.name, descriptor.purpose)
    return descriptor


def place(descriptor, device_config) -> tuple[torch.device, torch.dtype]:
    """The model on the engine's device (DeviceConfig; None: the CPU), in fp16 on CUDA where it supports it."""
    device = getattr(device_config, "device", torch.device("cpu"))
    half = device.type == "cuda" and descriptor.supports_half
    descriptor.to(device)
    if half:
        descriptor.model.half()
    return device, torch.float16 if half else torch.float32


def list_model_files(folders: list[Path], skip=lambda path: False) -> dict[str, Path]:
    """name (file stem) -> path of the model files in `folders`, first found wins."""
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in SUFFIXES and path.is_file() and not skip(path):
                    found.setdefault(path.stem, path)
    return found
