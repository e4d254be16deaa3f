"""The active checkpoint and a RAM cache of recently used ones (A1111: sd_checkpoints_limit)."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from webui.engine.checkpoints.loader import CheckpointNotFound, LoadedModel, load_checkpoint
from webui.engine.checkpoints.registry import CheckpointInfo, CheckpointRegistry
from webui.engine.device import DeviceConfig

log = logging.getLogger(__name__)


class ModelManager:
    def __init__(self, registry: CheckpointRegistry, device: DeviceConfig, cache_dir: Path, cache_size: int = 1):
        self.registry = registry
        self.device = device
        self.cache_dir = Path(cache_dir)
        self.cache_size = max(1, int(cache_size))
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()  # path -> model, most recent last
        self._active: LoadedModel | None = None
        self._lock = threading.RLock()
        self.loads = 0  # files read from disk (for tests and the Models tab)

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def active(self) -> LoadedModel | None:
        return self._active

    def cached_titles(self) -> list[str]:
        with self._lock:
            return [m.title for m in self._cache.values()]

    def resolve(self, query: str, allow_path: bool = True) -> CheckpointInfo:
        """A checkpoint of the folders by title, name or hash; with `allow_path`, also any checkpoint file path."""
        info = self.registry.find(query, allow_path)
        if info is None:
            self.registry.refresh()
            info = self.registry.find(query, allow_path)
        if info is None:
            names = ", ".join(i.title for i in self.registry.list()) or "none found"
            raise CheckpointNotFound(f"Checkpoint {query!r} not found. Available: {names}")
        return info

    # ---- switching -----------------------------------------------------------------------------------
    def select(self, query: str | CheckpointInfo) -> LoadedModel:
        """Make a checkpoint active: from the RAM cache when there, else from disk. On failure the previously
        active checkpoint stays active and the error names the file."""
        with self._lock:
            info = query if isinstance(query, CheckpointInfo) else self.resolve(query)
            key = str(Path(info.path).resolve())
            if self._active is not None and str(self._active.path.resolve()) == key:
                return self._active
            if key in self._cache:
                model = self._cache.pop(key)
                self._cache[key] = model
                self._activate(model)
                return model
            self.registry.ensure_hash(info) if Path(info.path).is_file() else None
            # make room first so peak memory stays at cache_size (+ the file being read)
            self._evict(self.cache_size - 1, keep=self._active)
            model = load_checkpoint(info.path, info.title, self._storage_device(active=True), self.device.dtype)
            model.sha256 = info.sha256
            self.loads += 1
            self._cache[key] = model
            self._activate(model)
            self._evict(self.cache_size)
            log.info("Loaded %s (%s) in %.2fs", info.title, model.spec.label, model.load_seconds)
            return model

    def unload(self) -> None:
        with self._lock:
            self._active = None
            self._cache.clear()
            _free_memory()

    def set_cache_size(self, n: int) -> None:
        with self._lock:
            self.cache_size = max(1, int(n))
            self._evict(self.cache_size)

    def _activate(self, model: LoadedModel) -> None:
        prev, self._active = self._active, model
        if self.device.is_cuda and self.device.offload == "none":
            if prev is not None and prev is not model:
                prev.to("cpu")  # cached in RAM, not VRAM
            model.to(self.device.device)

    def _storage_device(self, active: bool) -> torch.device:
        if active and self.device.is_cuda and self.device.offload == "none":
            return self.device.device
        return torch.device("cpu")

    def _evict(self, limit: int, keep: LoadedModel | None = None) -> None:
        while len(self._cache) > max(limit, 0):
            victim_key = next((k for k, m in self._cache.items() if m is not keep and m is not self._active), None)
            if victim_key is None:
                break
            self._cache.pop(victim_key)
            log.info("Evicted %s from the checkpoint cache", victim_key)
        _free_memory()


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
