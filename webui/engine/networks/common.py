"""Shared pieces of the network libraries: errors, folder scans, file hashes, safetensors metadata, previews."""
from __future__ import annotations

from webui.engine.requests import NotFoundError, RequestError

import difflib
import hashlib
import json
import os
import threading
from pathlib import Path

from safetensors import SafetensorError, safe_open

from webui.engine.checkpoints.family import FAMILY_LABELS

PREVIEW_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


class NetworkError(RequestError):
    """A LoRA, embedding or VAE could not be used; ``str(err)`` is a message for the user."""


class NetworkNotFound(NetworkError, NotFoundError):
    """No LoRA / VAE file of that name (the message lists close matches)."""


class UnsupportedNetworkError(NetworkError):
    """The file is in a format this app cannot apply (e.g. LoHa)."""


def check_finite(kind: str, path: Path, state_dict: dict) -> None:
    """Refuse a file holding NaN/Inf weights (a broken download or a diverged training run): applied, it would turn
    every image black. One `isfinite` pass per tensor, cheap next to reading the file."""
    import torch

    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NetworkError(f"{kind} {Path(path).name} is broken: {len(bad)} of its {len(state_dict)} tensors hold "
                           f"NaN/Inf values ({shown}); it would only produce black images. Use another file.")


def family_label(family: str | None) -> str:
    return FAMILY_LABELS.get(family or "", family or "unknown")


def not_found_message(kind: str, query: str, names: list[str]) -> str:
    """`LoRA 'x' not found` plus close matches (difflib) or the available names."""
    names = list(dict.fromkeys(names))
    close = difflib.get_close_matches(query, names, n=5, cutoff=0.5)
    if not close:
        low = {n.lower(): n for n in names}
        close = [low[n] for n in difflib.get_close_matches(query.lower(), list(low), n=5, cutoff=0.5)]
    if close:
        hint = "did you mean: " + ", ".join(close)
    elif names:
        shown = sorted(set(names), key=str.lower)
        hint = "available: " + ", ".join(shown[:20]) + (" ..." if len(shown) > 20 else "")
    else:
        hint = "none found"
    return f"{kind} {query!r} not found; {hint}"


def walk_files(folder: Path, suffixes: tuple[str, ...]):
    """Files under `folder` (subfolders too, symlinks followed) whose lower-case name ends with one of `suffixes`,
    in a stable order."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            if name.lower().endswith(suffixes) and not name.startswith("."):
                yield Path(root) / name


def tree_stamp(folders: list[Path]) -> tuple:
    """A cheap fingerprint of folder trees (names and mtimes of the folders): changes when files are added or
    removed, so a library knows when to rescan."""
    out = []
    for folder in folders:
        if not Path(folder).is_dir():
            out.append((str(folder), None))
            continue
        for root, dirs, _ in os.walk(folder, followlinks=True):
            dirs.sort()
            try:
                out.append((root, os.stat(root).st_mtime_ns))
            except OSError:
                pass
    return tuple(out)


def file_stamp(path: Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def addnet_hash(path: Path) -> str:
    """sd-webui-additional-networks' hash of a .safetensors file: SHA-256 of everything after the JSON header
    (so editing the metadata does not change it). A1111 shows its first 12 hex digits for LoRAs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(8 + n)
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class StampedCache:
    """Values computed from a file, kept while the file's size and mtime stay the same (thread-safe)."""

    def __init__(self):
        self._data: dict[tuple[str, str], tuple[tuple, object]] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, path: Path, compute):
        path = Path(path)
        stamp = file_stamp(path)
        key = (kind, str(path.resolve()))
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = compute(path)
        with self._lock:
            self._data[key] = (stamp, value)
        return value


def read_safetensors_metadata(path: Path) -> dict:
    """The `__metadata__` of a .safetensors file, values that hold JSON objects/lists decoded (as A1111 does)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(v, str) and v[:1] in "{[":
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def model_base(path: Path) -> Path:
    """A model's path without its extension (a diffusers folder keeps its whole name): what its preview and
    user-metadata files are named after."""
    path = Path(path)
    return path if path.is_dir() else path.with_suffix("")


def find_preview(path: Path) -> Path | None:
    """`name.preview.png` / `name.png` (or .jpg/.jpeg/.webp/.gif) next to a model file, like A1111."""
    base = model_base(path)
    for stem in (f"{base}.preview", str(base)):
        for ext in PREVIEW_EXTENSIONS:
            p = Path(stem + ext)
            if p.is_file():
                return p
    return None


def read_user_metadata(path: Path) -> dict:
    """A1111's per-model user metadata file `name.json` (description, activation text, preferred weight...)."""
    p = Path(f"{model_base(path)}.json")
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
