"""VAE files (models/VAE, --vae-dir) and swapping a model's VAE without reloading the checkpoint.

Choices (A1111's "SD VAE" setting): ``Automatic`` - a VAE file beside the checkpoint (``name.vae.safetensors``,
``.vae.pt``, ``.vae.ckpt``), else the checkpoint's own; ``None`` - the checkpoint's own; or a file name. A swap
replaces ``model.components["vae"]`` (the pipelines re-register it); the checkpoint's VAE stays in
``model.own_vae``. Files in the original LDM layout (``encoder.down.0...``, optionally under
``first_stage_model.``/``vae.``) are converted with diffusers' converter; diffusers-layout files load as they are.
The new VAE gets the model's own VAE config (scaling factor included), dtype and device; the fp16 NaN guard of
`generation.decode_latents` applies to it like to any VAE. A file that does not read, does not fit or holds NaN/Inf
raises NetworkError naming it, and the model keeps the VAE it had.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path


from webui.engine.checkpoints.loader import assign_weights
from webui.engine.networks.common import (
    NetworkError, NetworkNotFound, check_finite, file_stamp, not_found_message, walk_files,
)

log = logging.getLogger(__name__)

VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")
AUTOMATIC, NONE = "Automatic", "None"


@dataclass
class CachedVae:
    """A VAE file loaded for one model (``LoadedModel.vae_cache``), reused until the file changes on disk."""
    key: str  # the file's resolved path
    stamp: tuple[int, int]  # its size and mtime when it was loaded
    module: object  # the AutoencoderKL built from it


@dataclass
class VaeInfo:
    name: str  # file name (with extension), A1111's option value
    path: Path

    def as_api(self) -> dict:
        """An item of A1111's GET /sdapi/v1/sd-vae."""
        return {"model_name": self.name, "filename": str(self.path)}


@dataclass
class VaeChoice:
    """The VAE a job runs with: `info` None = the checkpoint's own."""
    info: VaeInfo | None
    sha256: str | None = None

    @property
    def name(self) -> str | None:
        return self.info.name if self.info else None


class VaeLibrary:
    def __init__(self, folders: list[Path], hashes=None):
        self.folders = [Path(f) for f in folders]
        self.hashes = hashes
        self._items: dict[str, VaeInfo] = {}
        self._lock = threading.Lock()
        self._scanned = False
        self.loads = 0  # VAE files read from disk

    def refresh(self) -> list[VaeInfo]:
        found: dict[str, VaeInfo] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in walk_files(folder, VAE_SUFFIXES):
                rel = path.relative_to(folder).as_posix()
                found.setdefault(rel, VaeInfo(rel, path))
        with self._lock:
            self._items = dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
            self._scanned = True
        return self.list()

    def list(self) -> list[VaeInfo]:
        if not self._scanned:
            self.refresh()
        with self._lock:
            return list(self._items.values())

    def choices(self) -> list[str]:
        return [AUTOMATIC, NONE] + [i.name for i in self.list()]

    def find(self, query: str) -> VaeInfo | None:
        q = query.strip()
        items = self.list()
        for pred in (lambda i: i.name == q, lambda i: i.path.name == q, lambda i: i.path.stem == q,
                     lambda i: Path(i.name).with_suffix("").as_posix() == q,
                     lambda i: i.path.name.lower() == q.lower() or i.path.stem.lower() == q.lower()):
            for item in items:
                if pred(item):
                    return item
        p = Path(q)
        if p.is_file() and p.suffix.lower() in VAE_SUFFIXES and self._inside_folders(p):
            return VaeInfo(p.name, p.resolve())
        return None

    def _inside_folders(self, path: Path) -> bool:
        """A VAE given by path must be in a VAE folder (or a checkpoint's neighbour): a client cannot make the
        server read or probe files elsewhere."""
        real = path.resolve()
        return any(Path(f).resolve() in real.parents for f in self.folders)

    def validate(self, choice: str | None) -> str:
        """The normalised choice; raises NetworkError (with close matches) for an unknown file."""
        if choice is None or str(choice).strip() in ("", AUTOMATIC):
            return AUTOMATIC
        if str(choice).strip() == NONE:
            return NONE
        info = self.find(choice)
        if info is None:
            self.refresh()
            info = self.find(choice)
        if info is None:
            names = [i.name for i in self.list()] + [i.path.stem for i in self.list()]
            raise NetworkNotFound(not_found_message("VAE", choice, names) + f" (choices: {AUTOMATIC}, {NONE}, files)")
        return info.name

    def beside(self, checkpoint_path: Path) -> VaeInfo | None:
        """`name.vae.safetensors` (.pt, .ckpt) next to a single-file checkpoint."""
        cp = Path(checkpoint_path)
        if cp.is_dir():
            return None
        base = cp.with_suffix("")
        for ext in VAE_SUFFIXES:
            p = Path(f"{base}.vae{ext}")
            if p.is_file():
                return VaeInfo(p.name, p)
        return None

    def resolve(self, choice: str, model) -> VaeChoice:
        choice = self.validate(choice)
        if choice == NONE:
            return VaeChoice(None)
        info = self.beside(model.path) if choice == AUTOMATIC else self.find(choice)
        if info is None:
            return VaeChoice(None)
        sha = self.hashes.sha256(info.path) if self.hashes is not None else None
        return VaeChoice(info, sha)

    # ---- swapping --------------------------------------------------------------------------------------------
    def apply(self, model, choice: VaeChoice) -> bool:
        """Put the chosen VAE into the model (no checkpoint reload). Returns True when the VAE changed."""
        current = model.components["vae"]
        if choice.info is None:
            if current is model.own_vae:
                return False
            model.components["vae"] = model.own_vae
            return True
        cache = model.vae_cache
        stamp = file_stamp(choice.info.path)
        key = str(choice.info.path.resolve())
        if cache is None or cache.key != key or cache.stamp != stamp:
            cache = model.vae_cache = CachedVae(key, stamp, self.load(choice.info.path, model))
        if current is cache.module:
            return False
        model.components["vae"] = cache.module
        return True

    def check_file(self, choice: str) -> None:
        """Read the chosen file when there is no model to put it in yet: one that does not read or holds NaN
        raises NetworkError now rather than failing every later job."""
        info = None if self.validate(choice) in (AUTOMATIC, NONE) else self.find(choice)
        if info is not None:
            self.read(info.path)

    def read(self, path: Path) -> dict:
        from webui.engine.checkpoints.loader import CheckpointLoadError, read_state_dict

        path = Path(path)
        try:
            sd, _ = read_state_dict(path)
        except CheckpointLoadError as exc:
            raise NetworkError(f"VAE {path.name}: " + str(exc).split(": ", 1)[-1]) from exc
        check_finite("VAE", path, sd)
        return sd

    def load(self, path: Path, model):
        """A VAE file as a module shaped like the model's own VAE."""
        from accelerate import init_empty_weights
        from diffusers import AutoencoderKL
        from diffusers.loaders import single_file_utils as sfu

        path = Path(path)
        sd = self.read(path)
        self.loads += 1
        own = model.own_vae
        config = dict(own.config)
        if any(".down_blocks." in k or k.startswith("decoder.up_blocks.") for k in sd):
            weights = {k.removeprefix("vae."): v for k, v in sd.items()}
        else:
            weights = sfu.convert_ldm_vae_checkpoint(sd, config)
        with init_empty_weights():
            module = AutoencoderKL.from_config(config)
        param = next(own.parameters())
        problem = assign_weights(module, weights, param.dtype)
        if problem:
            raise NetworkError(f"VAE {path.name} does not fit this model: {problem}")
        if param.device.type != "cpu":
            module.to(param.device)
        module.requires_grad_(False).eval()
        log.info("Loaded VAE %s", path)
        return module
