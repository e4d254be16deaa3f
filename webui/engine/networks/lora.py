"""LoRA files on disk (the registry behind `<lora:name:w>`, the LoRA tab and /sdapi/v1/loras) and the LoRAs loaded
into one model (diffusers `load_lora_weights` / `set_adapters` / `fuse_lora`, with an exact restore).

Per model (kept in ``model.loras``): every LoRA used is read and converted once and stays loaded as a PEFT adapter
(at most ``max_loaded``, least recently used dropped first). A job sets the weights of its LoRAs and fuses them into
the weights (so a step costs what a step without LoRA costs); the previous job's exact set of LoRAs and weights is
kept fused and costs nothing. Before anything else changes, the fused weights are put back from a copy of the
original weights taken before the first fusion (peft's unmerge subtracts the delta again, which is not bit-exact in
floating point), so a prompt without LoRA gives the same pixels as a freshly loaded model.
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.engine.networks.common import (
    NetworkError, NetworkNotFound, StampedCache, addnet_hash, check_finite, file_stamp, find_preview, not_found_message,
    read_safetensors_metadata, read_user_metadata, sha256_file, walk_files,
)
from webui.engine.networks.lora_convert import ConvertedLora, build_module_table, convert_lora

log = logging.getLogger(__name__)

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")


@dataclass
class LoraInfo:
    name: str  # file name without extension: what `<lora:name>` uses
    path: Path
    rel: str  # path inside its folder, without extension (subfolder/name)
    metadata: dict = field(default_factory=dict)
    preview: Path | None = None
    user_metadata: dict = field(default_factory=dict)

    @property
    def alias(self) -> str:
        """A1111: the `ss_output_name` of kohya's metadata, else the name."""
        out = self.metadata.get("ss_output_name")
        return str(out) if out else self.name

    @property
    def sd_version(self) -> str:
        """'SD1' | 'SD2' | 'SDXL' | 'Unknown' from the metadata (A1111's LoRA tab filter)."""
        base = str(self.metadata.get("ss_base_model_version", "")).lower()
        arch = str(self.metadata.get("modelspec.architecture", "")).lower()
        if base.startswith("sdxl") or "stable-diffusion-xl" in arch:
            return "SDXL"
        if base.startswith("sd_v2") or str(self.metadata.get("ss_v2", "")).lower() == "true" or "stable-diffusion-v2" in arch:
            return "SD2"
        if base.startswith("sd_v1") or "stable-diffusion-v1" in arch or self.metadata.get("ss_v2") == "False":
            return "SD1"
        return "Unknown"

    @property
    def base_model(self) -> str | None:
        for k in ("ss_sd_model_name", "modelspec.architecture", "ss_base_model_version"):
            if self.metadata.get(k):
                return str(self.metadata[k])
        return None

    @property
    def resolution(self) -> str | None:
        r = self.metadata.get("ss_resolution") or self.metadata.get("modelspec.resolution")
        if not r:
            return None
        nums = [s.strip(" ()[]") for s in str(r).replace("x", ",").split(",")]
        nums = [n for n in nums if n.isdigit()]
        return "x".join(nums) if nums else str(r)

    def trigger_words(self, limit: int = 20) -> list[str]:
        """Training tags by frequency (kohya's `ss_tag_frequency`), most frequent first; A1111's user metadata
        'activation text' first when present."""
        words: list[str] = []
        activation = str(self.user_metadata.get("activation text", "")).strip()
        if activation:
            words.append(activation)
        freq = self.metadata.get("ss_tag_frequency")
        counts: Counter = Counter()
        if isinstance(freq, dict):
            for tags in freq.values():
                if isinstance(tags, dict):
                    for tag, n in tags.items():
                        try:
                            counts[str(tag).strip()] += int(n)
                        except (TypeError, ValueError):
                            pass
        words += [t for t, _ in counts.most_common(limit) if t and t not in words]
        return words[:limit]

    def as_api(self) -> dict:
        """An item of A1111's GET /sdapi/v1/loras."""
        return {"name": self.name, "alias": self.alias, "path": str(self.path), "metadata": self.metadata}

    def details(self) -> dict:
        """What the LoRA tab shows."""
        return {**self.as_api(), "sd_version": self.sd_version, "base_model": self.base_model,
                "resolution": self.resolution, "trigger_words": self.trigger_words(),
                "preview": str(self.preview) if self.preview else None,
                "preferred_weight": self.user_metadata.get("preferred weight"),
                "description": self.user_metadata.get("description")}


class LoraLibrary:
    """The LoRA files of models/Lora, models/LyCORIS and --lora-dir (subfolders included)."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self._items: dict[str, LoraInfo] = {}
        self._lock = threading.Lock()
        self._meta = StampedCache()
        self._hashes = StampedCache()
        self._scanned = False
        self.reads = 0  # LoRA files read from disk (a reused LoRA is not read again)

    def refresh(self) -> list[LoraInfo]:
        found: dict[str, LoraInfo] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in walk_files(folder, LORA_SUFFIXES):
                rel = path.relative_to(folder).with_suffix("").as_posix()
                if rel in found:
                    continue
                meta = self._meta.get("meta", path, read_safetensors_metadata) if path.suffix.lower() == ".safetensors" else {}
                found[rel] = LoraInfo(name=path.stem, path=path, rel=rel, metadata=meta, preview=find_preview(path),
                                      user_metadata=read_user_metadata(path))
        with self._lock:
            self._items = dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
            self._scanned = True
        return self.list()

    def list(self) -> list[LoraInfo]:
        if not self._scanned:
            self.refresh()
        with self._lock:
            return list(self._items.values())

    def find(self, query: str) -> LoraInfo | None:
        """By name (file name without extension), subfolder/name, file name, alias (ss_output_name), or a
        case-insensitive name; None when nothing (or more than one alias) matches."""
        q = query.strip()
        items = self.list()
        for pred in (lambda i: i.name == q, lambda i: i.rel == q, lambda i: i.path.name == q):
            for item in items:
                if pred(item):
                    return item
        aliases = [i for i in items if i.alias == q]
        if len(aliases) == 1:
            return aliases[0]
        low = [i for i in items if i.name.lower() == q.lower() or i.alias.lower() == q.lower()]
        if len({i.path for i in low}) == 1:
            return low[0]
        return None

    def resolve(self, query: str) -> LoraInfo:
        """`find`, rescanning the folders once on a miss; an unknown name raises with close matches."""
        info = self.find(query)
        if info is None:
            self.refresh()
            info = self.find(query)
        if info is None:
            names = [i.name for i in self.list()] + [i.alias for i in self.list()]
            where = ", ".join(str(f) for f in self.folders)
            raise NetworkNotFound(not_found_message("LoRA", query, names) + f" (folders: {where})")
        return info

    def short_hash(self, info: LoraInfo) -> str:
        """12 hex digits as A1111 writes them in `Lora hashes`: kohya's precomputed `sshs_model_hash`, else the
        additional-networks hash of a .safetensors file, else the file's SHA-256."""
        pre = info.metadata.get("sshs_model_hash")
        if isinstance(pre, str) and len(pre) >= 12:
            return pre[:12]
        fn = addnet_hash if info.path.suffix.lower() == ".safetensors" else sha256_file
        return self._hashes.get("addnet", info.path, fn)[:12]

    def read(self, info: LoraInfo) -> tuple[dict[str, torch.Tensor], dict]:
        from webui.engine.checkpoints.loader import CheckpointLoadError, read_state_dict

        try:
            sd, _ = read_state_dict(info.path)
        except CheckpointLoadError as exc:
            raise NetworkError(f"LoRA {info.name!r}: " + str(exc).split(": ", 1)[-1]) from exc
        check_finite("LoRA", info.path, sd)
        self.reads += 1
        meta = info.metadata if info.path.suffix.lower() == ".safetensors" else {}
        return sd, meta


@dataclass
class LoadedLora:
    adapter: str
    info: LoraInfo
    stamp: tuple
    components: set[str]
    warnings: list[str]


class _OtherAdaptersReport(logging.Filter):
    """Drops transformers' load report that lists the text encoder's *other* adapters as missing when one more
    adapter is loaded (every one of their keys is "missing" from the new adapter's state dict)."""

    def __init__(self, adapter: str):
        super().__init__()
        self.adapter = adapter

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" not in msg:
            return True
        rows = [ln for ln in msg.splitlines() if "|" in ln and ("MISSING" in ln or "UNEXPECTED" in ln)]
        others = all(".lora_" in ln and f".{self.adapter}." not in ln and "MISSING" in ln for ln in rows)
        return not (rows and others)


class ModelLoras:
    """The LoRAs loaded into one model, and which of them (with which weights) are fused right now."""

    def __init__(self, max_loaded: int = 8):
        self.max_loaded = max(1, max_loaded)
        self.loaded: OrderedDict[str, LoadedLora] = OrderedDict()  # resolved path -> adapter, least recent first
        self.applied: tuple = ()  # ((adapter, te, unet), ...) fused now
        self.backups: dict[tuple[str, str], torch.Tensor] = {}  # (component, module) -> original weight (CPU)
        self.table = None
        self._fused_modules: set[tuple[str, str]] = set()  # modules whose weights hold a fused LoRA now
        self._next = 0
        self.fusions = 0  # how many times weights were fused (for tests and benchmarks)

    @staticmethod
    def of(model) -> "ModelLoras":
        if model.loras is None:
            model.loras = ModelLoras()
        return model.loras

    # ---- loading ---------------------------------------------------------------------------------------------
    def ensure(self, model, pipe, library: LoraLibrary, infos: list[LoraInfo]) -> list[LoadedLora]:
        """Load the LoRAs of `infos` that are not loaded yet (or changed on disk); returns them in order."""
        out = []
        keep = {str(i.path.resolve()) for i in infos}
        for info in infos:
            key = str(info.path.resolve())
            stamp = file_stamp(info.path)
            item = self.loaded.get(key)
            if item is not None and item.stamp == stamp:
                self.loaded.move_to_end(key)
                item.info = info
                out.append(item)
                continue
            self.restore(pipe)
            if item is not None:  # the file changed: load it again
                self._delete(pipe, key)
            self._evict(pipe, keep)
            if self.table is None:
                self.table = build_module_table(model)
            sd, meta = library.read(info)
            converted: ConvertedLora = convert_lora(info.name, sd, meta, self.table, model.title)
            del sd
            adapter = f"lora{self._next}"
            self._next += 1
            self._inject(pipe, converted, adapter, info)
            item = LoadedLora(adapter, info, stamp, set(converted.components), list(converted.warnings))
            self.loaded[key] = item
            out.append(item)
        return out

    def _inject(self, pipe, converted: ConvertedLora, adapter: str, info: LoraInfo) -> None:
        dev = {}
        for comp in converted.components:
            p = next(pipe.components[comp].parameters())
            dev[comp] = (p.device, p.dtype)
        sd = {}
        for k, v in converted.state_dict.items():
            device, dtype = dev[k.split(".", 1)[0]]
            sd[k] = v.to(device=device, dtype=dtype)
        report_log = logging.getLogger("transformers.integrations.peft")
        noise = _OtherAdaptersReport(adapter)
        report_log.addFilter(noise)
        try:
            with warnings.catch_warnings():  # peft: "Already found a peft_config ... multiple adapters" (intended)
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                pipe.load_lora_weights(sd, adapter_name=adapter)
        except (ValueError, RuntimeError, KeyError) as exc:
            try:
                pipe.delete_adapters(adapter)
            except Exception:  # noqa: BLE001 - best effort cleanup of a half-loaded adapter
                pass
            raise NetworkError(f"LoRA {info.name!r} could not be loaded: {exc}") from exc
        finally:
            report_log.removeFilter(noise)
        # a fresh adapter is active with weight 1 until set_adapters: keep the model as it was
        pipe.disable_lora()

    def _delete(self, pipe, key: str) -> None:
        item = self.loaded.pop(key, None)
        if item is not None:
            pipe.delete_adapters(item.adapter)

    def _evict(self, pipe, keep: set[str]) -> None:
        while len(self.loaded) >= self.max_loaded:
            victim = next((k for k in self.loaded if k not in keep), None)
            if victim is None:
                break
            self._delete(pipe, victim)

    # ---- weights ---------------------------------------------------------------------------------------------
    def apply(self, pipe, wanted: list[tuple[LoadedLora, float, float]]) -> bool:
        """Make exactly `wanted` ((lora, te weight, unet weight), ...) active and fused. Returns False when nothing
        had to change (the previous batch used the same LoRAs and weights)."""
        wanted = [(lo, te, un) for lo, te, un in wanted if te != 0 or un != 0]
        key = tuple((lo.adapter, float(te), float(un)) for lo, te, un in wanted)
        if key == self.applied:
            return False
        self.restore(pipe)
        if not wanted:
            return True
        names, weights, comps = [], [], set()
        for lo, te, un in wanted:
            w = {}
            for comp in lo.components:
                w[comp] = float(un) if comp == "unet" else float(te)
            names.append(lo.adapter)
            weights.append(w)
            comps |= lo.components
        pipe.enable_lora()
        pipe.set_adapters(names, weights)
        self._backup(pipe, set(names), comps)
        try:
            pipe.fuse_lora(components=sorted(comps), lora_scale=1.0, adapter_names=names)
        except Exception:
            self.restore(pipe)  # a half-done fusion is undone from the backups
            raise
        self.applied = key
        self.fusions += 1
        return True

    def restore(self, pipe) -> None:
        """Undo the fusion exactly (original weights copied back) and switch the adapters off."""
        if not self.applied and not self._fused_modules:
            return
        comps = sorted({c for item in self.loaded.values() for c in item.components})
        try:
            with warnings.catch_warnings():  # peft warns for every layer of an adapter that was not fused
                warnings.filterwarnings("ignore", message="Already unmerged")
                pipe.unfuse_lora(components=comps)
        finally:
            with torch.no_grad():
                for comp, name in self._fused_modules:
                    module = pipe.components[comp].get_submodule(name)
                    layer = module.get_base_layer() if hasattr(module, "get_base_layer") else module
                    layer.weight.copy_(self.backups[(comp, name)])
            pipe.disable_lora()
            self.applied = ()
            self._fused_modules = set()

    def fused_originals(self, component: str) -> dict[str, torch.Tensor]:
        """Module name -> original weight (CPU copy) of the modules of `component` that hold a fused LoRA now."""
        return {name: self.backups[(comp, name)] for comp, name in self._fused_modules if comp == component}

    def _backup(self, pipe, adapters: set[str], comps: set[str]) -> None:
        """Keep a copy of the original weight of every module the adapters will change (once per module)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        for comp in comps:
            for name, module in pipe.components[comp].named_modules():
                if not isinstance(module, BaseTunerLayer) or not adapters & set(getattr(module, "r", {}) or {}):
                    continue
                self._fused_modules.add((comp, name))
                if (comp, name) not in self.backups:
                    w = module.get_base_layer().weight.detach()
                    self.backups[(comp, name)] = w.to("cpu", copy=True)
