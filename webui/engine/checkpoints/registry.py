"""Checkpoint discovery: scan folders, A1111 names and titles, SHA-256 with a small on-disk cache."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from webui.settings import atomic_write_text

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
EAGER_HASH_BYTES = 256 * 1024 * 1024  # small files are hashed at scan time; big ones when first loaded (as A1111)


class HashCache:
    """sha256 per file, keyed by path + size + mtime, stored as JSON (cache/hashes.json)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._data = {}
        self.hits = 0
        self.computed = 0

    @staticmethod
    def _key(file: Path) -> tuple[str, dict]:
        st = file.stat()
        return str(file.resolve()), {"size": st.st_size, "mtime": st.st_mtime}

    def cached(self, file: Path) -> str | None:
        key, stamp = self._key(file)
        with self._lock:
            entry = self._data.get(key)
        if entry and entry.get("size") == stamp["size"] and entry.get("mtime") == stamp["mtime"]:
            self.hits += 1
            return entry["sha256"]
        return None

    def sha256(self, file: Path) -> str:
        file = Path(file)
        found = self.cached(file)
        if found:
            return found
        digest = sha256_of(file)
        key, stamp = self._key(file)
        with self._lock:
            self._data[key] = {**stamp, "sha256": digest}
            self.computed += 1
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self._data, indent=1))
        return digest


def sha256_of(file: Path) -> str:
    h = hashlib.sha256()
    file = Path(file)
    paths = sorted(p for p in file.rglob("*") if p.is_file()) if file.is_dir() else [file]
    for p in paths:
        if file.is_dir():
            h.update(str(p.relative_to(file)).encode())
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


@dataclass
class CheckpointInfo:
    path: Path
    name: str  # relative path inside its folder, with extension (A1111 "name")
    size: int
    sha256: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def is_diffusers_folder(self) -> bool:
        return self.path.is_dir()

    @property
    def model_name(self) -> str:
        """Name without extension, as in infotext `Model:` and the API's model_name."""
        stem = self.name[: -len(self.path.suffix)] if self.path.suffix and not self.is_diffusers_folder else self.name
        return stem.replace("/", "_").replace("\\", "_")

    @property
    def shorthash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    @property
    def title(self) -> str:
        return f"{self.name} [{self.shorthash}]" if self.shorthash else self.name


class CheckpointRegistry:
    def __init__(self, folders: list[Path], hash_cache: HashCache):
        self.folders = [Path(f) for f in folders]
        self.hashes = hash_cache
        self._items: dict[str, CheckpointInfo] = {}
        self._lock = threading.Lock()

    def refresh(self) -> list[CheckpointInfo]:
        found: dict[str, CheckpointInfo] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in _walk_checkpoints(folder):
                rel = path.relative_to(folder).as_posix()
                if rel in found:  # first folder wins, like A1111
                    continue
                size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                info = CheckpointInfo(path=path, name=rel, size=size)
                info.sha256 = self.hashes.cached(path) if path.is_file() else None
                if info.sha256 is None and path.is_file() and size <= EAGER_HASH_BYTES:
                    info.sha256 = self.hashes.sha256(path)
                found[rel] = info
        with self._lock:
            self._items = dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
        return self.list()

    def list(self) -> list[CheckpointInfo]:
        with self._lock:
            return list(self._items.values())

    def ensure_hash(self, info: CheckpointInfo) -> str:
        if info.sha256 is None:
            info.sha256 = self.hashes.sha256(info.path)
        return info.sha256

    def find(self, query: str, allow_path: bool = True) -> CheckpointInfo | None:
        """Accept a title (`name [hash]`), a name with or without extension, a short/long hash, or (`allow_path`)
        the path of a checkpoint anywhere on disk."""
        q = query.strip()
        items = self.list()
        for pred in (
            lambda i: i.title == q,
            lambda i: i.name == q,
            lambda i: i.model_name == q or i.path.stem == q,
            lambda i: bool(i.sha256) and len(q) >= 8 and i.sha256.startswith(q.lower()),
            lambda i: q.endswith("]") and q.rsplit(" [", 1)[0] in (i.name, i.model_name),  # A1111's short title
        ):
            for item in items:
                if pred(item):
                    return item
        p = Path(q)
        if allow_path and p.exists() and (p.suffix in CHECKPOINT_SUFFIXES or (p / "model_index.json").exists()):
            return CheckpointInfo(path=p.resolve(), name=p.name, size=p.stat().st_size, sha256=self.hashes.cached(p) if p.is_file() else None)
        return None


def _walk_checkpoints(folder: Path):
    for root, dirs, files in os.walk(folder, followlinks=True):
        root_p = Path(root)
        for d in list(dirs):
            if (root_p / d / "model_index.json").exists():
                dirs.remove(d)
                yield root_p / d
        dirs.sort()
        for name in sorted(files):
            low = name.lower()
            if low.endswith(CHECKPOINT_SUFFIXES) and ".vae." not in low:
                yield root_p / name
