"""Face restoration as A1111 has it: GFPGAN and CodeFormer (and RestoreFormer) models from models/GFPGAN and
models/Codeformer (plus --gfpgan-models-path, --codeformer-models-path), loaded with spandrel.

Each face found (postprocess/face_detect.py) is aligned to 512 x 512, restored, and pasted back with a feathered
mask (postprocess/face_align.py). `visibility` blends the result with the input as A1111's Extras sliders do;
CodeFormer's `weight` is A1111's code_former_weight (0: the model's own face, 1: closest to the input)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.engine.postprocess.face_align import FACE_SIZE, align_matrix, crop, paste
from webui.engine.postprocess.face_detect import make_detector
from webui.engine.postprocess.image_models import list_model_files, load_image_model, place
from webui.engine.requests import RequestError

KINDS = ("CodeFormer", "GFPGAN", "RestoreFormer")  # A1111's order in its setting's choices
FOLDERS_HINT = "models/GFPGAN or models/Codeformer"
# Files A1111's facexlib keeps in models/GFPGAN beside the restorers: detectors and face parsers, not restorers
NOT_RESTORERS = ("detection_", "parsing_", "yolo")


class FaceRestorationUnavailable(RequestError):
    """Face restoration asked for, but no model of that kind is installed (the message names the folder)."""


@dataclass(frozen=True)
class FaceRestorerInfo:
    kind: str  # GFPGAN, CodeFormer or RestoreFormer (from the file's name and folder; confirmed when loaded)
    path: Path

    def as_api(self) -> dict:
        return {"name": self.kind, "cmd_dir": str(self.path.parent)}


def kind_of(path: Path, folder_kind: str) -> str:
    name = path.stem.lower()
    for kind in KINDS:
        if kind.lower() in name:
            return kind
    return folder_kind


class FaceRestorers:
    def __init__(self, folders: dict[str, list[Path]], device=None):
        """`folders`: kind -> folders ({"GFPGAN": [models/GFPGAN, ...], "CodeFormer": [models/Codeformer, ...]});
        `device`: the engine's DeviceConfig (None: the CPU)."""
        self.folders = {kind: [Path(f) for f in paths] for kind, paths in folders.items()}
        self.device = device
        self._models: dict[str, FaceRestorerInfo] = {}
        self._loaded: tuple[Path, object] | None = None  # the last model used stays in memory
        self._detector = None
        self._lock = threading.Lock()
        self.refresh()

    # ---- listing -------------------------------------------------------------------------------------------
    def refresh(self) -> list[FaceRestorerInfo]:
        found: dict[str, FaceRestorerInfo] = {}
        for folder_kind, folders in self.folders.items():
            files = list_model_files(folders, skip=lambda p: p.name.lower().startswith(NOT_RESTORERS))
            for path in files.values():
                found.setdefault(kind_of(path, folder_kind), FaceRestorerInfo(kind_of(path, folder_kind), path))
        self._models = {kind: found[kind] for kind in KINDS if kind in found}
        return list(self._models.values())

    def installed(self) -> list[FaceRestorerInfo]:
        return list(self._models.values())

    def check(self, kind: str, field: str) -> str:
        """The installed kind named `kind` (case-insensitive); FaceRestorationUnavailable naming the folders."""
        if not self._models:
            self.refresh()
        for known in self._models:
            if known.lower() == str(kind).lower():
                return known
        have = ", ".join(self._models) or "none"
        raise FaceRestorationUnavailable(
            f"{field}: no {kind} face restoration model is installed (installed: {have}). Put a GFPGAN, CodeFormer "
            f"or RestoreFormer model (.pth or .safetensors) in {FOLDERS_HINT}")

    # ---- restoring -----------------------------------------------------------------------------------------
    def restore(self, image: Image.Image, kind: str, visibility: float = 1.0,
                weight: float = 0.5) -> tuple[Image.Image, int]:
        """`image` with its faces restored by the `kind` model, blended in at `visibility`; and how many faces."""
        kind = self.check(kind, "face restoration")
        if visibility <= 0:
            return image, 0
        rgb = np.asarray(image.convert("RGB"))
        faces = self.detector().detect(rgb)
        if not faces:
            return image, 0
        descriptor = self._descriptor(self._models[kind])
        canvas = rgb.astype(np.float32)
        for face in faces:
            matrix = align_matrix(face.points)
            canvas = paste(canvas, self._run(descriptor, crop(rgb, matrix), weight), matrix)
        out = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
        if visibility < 1:
            out = Image.blend(image.convert("RGB"), out, visibility)
        if image.mode == "RGBA":
            out.putalpha(image.getchannel("A"))
        return out, len(faces)

    def detector(self):
        if self._detector is None:
            self._detector = make_detector([f for folders in self.folders.values() for f in folders])
        return self._detector

    def _run(self, descriptor, face: np.ndarray, weight: float) -> np.ndarray:
        """One aligned 512 px face through the model. Called on the module itself, not spandrel's wrapper: these
        models take [-1, 1] input, CodeFormer takes its fidelity weight, and GFPGAN's noise stays fixed (the
        weights' own noise buffers) so a seed gives the same image every time."""
        device, dtype = place(descriptor, self.device)
        x = torch.from_numpy(face.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None].to(device, dtype)
        name = descriptor.architecture.name
        kwargs = {"weight": float(weight)} if name == "CodeFormer" else {"randomize_noise": False} \
            if name == "GFPGAN" else {}
        with torch.inference_mode():
            y = descriptor.model(x, **kwargs)[0]
        y = ((y.float().clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 0).cpu().numpy()
        return y if y.shape[0] == FACE_SIZE else np.asarray(Image.fromarray(y.astype(np.uint8)).resize(
            (FACE_SIZE, FACE_SIZE), Image.LANCZOS), np.float32)

    def _descriptor(self, info: FaceRestorerInfo):
        with self._lock:
            if self._loaded is not None and self._loaded[0] == info.path:
                return self._loaded[1]
            self._loaded = None  # free the previous model first
            self._loaded = (info.path, load_image_model(info.path, ("FaceSR",), "a face restoration"))
            return self._loaded[1]
