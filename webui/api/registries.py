"""What the engine offers beyond checkpoints (styles, LoRA, embeddings, VAEs, extensions), read through small duck-
typed adapters so that wiring a registry into the engine is one attribute:

    engine.styles      .list() -> items with .name, .prompt, .negative_prompt       (e.g. a StyleStore)
    engine.loras       .list() / .refresh() -> items with .name, .path [, .alias, .metadata]
    engine.embeddings  .list() / .refresh() -> items with .name [, .step, .sd_checkpoint, .sd_checkpoint_name,
                       .shape, .vectors, .loaded]
    engine.vaes        .list() / .refresh() -> items with .name, .path
    engine.extensions  .list() -> items with .name [, .enabled, .remote, .branch, .commit_hash, .version]

Without the attribute, /loras and /sd-vae list the files in the A1111 folders (as A1111 does), other lists are
empty, and a request that needs the feature (styles, a <lora:...> tag) gets a 422 saying it is not available yet.
A plain dict {name: item} or list also works as a registry. When the engine has one, it is also expected to apply
it (GenerationRequest.styles, <lora:> tags).
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from webui.api.errors import ApiError

log = logging.getLogger(__name__)
NETWORK_SUFFIXES = (".safetensors", ".pt", ".ckpt")
LORA_TAG = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::[^>]*)?>", re.IGNORECASE)


def registry(engine, name: str):
    return getattr(engine, name, None)


def items(engine, name: str, refresh: bool = False) -> list[Any]:
    reg = registry(engine, name)
    if reg is None:
        return []
    if refresh and hasattr(reg, "refresh"):
        got = reg.refresh()
        if got is not None and not isinstance(got, bool):
            return _as_list(got)
    if hasattr(reg, "list"):
        return _as_list(reg.list())
    return _as_list(reg)


def _as_list(obj) -> list[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    return list(obj or [])


def _get(item, key: str, default=None):
    if isinstance(item, dict):
        return item.get(key, default)
    return getattr(item, key, default)


def refresh(engine, name: str) -> None:
    reg = registry(engine, name)
    if reg is not None and hasattr(reg, "refresh"):
        reg.refresh()


# ---- listings in A1111's shapes -------------------------------------------------------------------------------

def styles(engine) -> list[dict]:
    return [{"name": str(_get(s, "name")), "prompt": _get(s, "prompt", "") or "",
             "negative_prompt": _get(s, "negative_prompt", "") or ""} for s in items(engine, "styles")]


def _files(dirs, suffixes, accept=lambda p: True) -> list[Path]:
    found, seen = [], set()
    for folder in dirs:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for root, subdirs, names in os.walk(folder, followlinks=True):
            subdirs.sort()
            for name in sorted(names):
                path = Path(root) / name
                if path.suffix.lower() in suffixes and accept(path) and path.name not in seen:
                    seen.add(path.name)
                    found.append(path)
    return found


def safetensors_metadata(path: Path) -> dict:
    """The file's __metadata__, JSON values decoded (A1111 shows ss_tag_frequency etc. as objects)."""
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - a broken file is listed without metadata
        log.warning("could not read the metadata of %s", path)
        return {}
    for key, value in meta.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                meta[key] = json.loads(value)
            except ValueError:
                pass
    return meta


def _lora_files(engine) -> list[dict]:
    out = []
    for path in _files(engine.settings.lora_search_dirs, NETWORK_SUFFIXES):
        meta = safetensors_metadata(path)
        out.append({"name": path.stem, "alias": str(meta.get("ss_output_name") or path.stem), "path": str(path),
                    "metadata": meta})
    return out


def loras(engine, refresh_first: bool = False) -> list[dict]:
    if registry(engine, "loras") is None:
        return _lora_files(engine)
    out = []
    for item in items(engine, "loras", refresh_first):
        name = str(_get(item, "name"))
        out.append({"name": name, "alias": str(_get(item, "alias", None) or name),
                    "path": str(_get(item, "path", "") or ""), "metadata": dict(_get(item, "metadata", None) or {})})
    return out


def embeddings(engine) -> dict:
    loaded, skipped = {}, {}
    for item in items(engine, "embeddings"):
        entry = {"step": _get(item, "step"), "sd_checkpoint": _get(item, "sd_checkpoint"),
                 "sd_checkpoint_name": _get(item, "sd_checkpoint_name"), "shape": int(_get(item, "shape", 0) or 0),
                 "vectors": int(_get(item, "vectors", 0) or 0)}
        (loaded if _get(item, "loaded", True) else skipped)[str(_get(item, "name"))] = entry
    return {"loaded": loaded, "skipped": skipped}


def vaes(engine) -> list[dict]:
    if registry(engine, "vaes") is None:
        st = engine.settings
        in_vae_dirs = _files(st.vae_search_dirs, NETWORK_SUFFIXES)
        beside_checkpoints = _files(st.checkpoint_dirs, NETWORK_SUFFIXES, lambda p: ".vae." in p.name.lower())
        return [{"model_name": p.name, "filename": str(p)} for p in in_vae_dirs + beside_checkpoints]
    return [{"model_name": str(_get(v, "name")), "filename": str(_get(v, "path", "") or "")}
            for v in items(engine, "vaes")]


def extensions(engine) -> list[dict]:
    out = []
    for ext in items(engine, "extensions"):
        out.append({"name": str(_get(ext, "name")), "remote": _get(ext, "remote"), "branch": _get(ext, "branch"),
                    "commit_hash": _get(ext, "commit_hash"), "version": _get(ext, "version"),
                    "commit_date": _get(ext, "commit_date"), "enabled": bool(_get(ext, "enabled", True))})
    return out


# ---- request checks -------------------------------------------------------------------------------------------

def check_styles(engine, names: list[str]) -> None:
    if not names:
        return
    if registry(engine, "styles") is None:
        raise ApiError(422, f"styles={names!r}: prompt styles are not available in this build yet")
    known = {s["name"] for s in styles(engine)}
    missing = [n for n in names if n not in known]
    if missing:
        raise ApiError(404, f"style(s) not found: {', '.join(map(repr, missing))}. "
                            f"Available: {', '.join(sorted(known)) or 'none'}")


def check_extra_networks(engine, *prompts: str) -> None:
    """<lora:name:w> and friends: 422 when the engine has no LoRA support, 404 naming an unknown LoRA."""
    tags = [(m.group(1).lower(), m.group(2).strip()) for p in prompts if p for m in LORA_TAG.finditer(p)]
    if not tags:
        return
    if any(kind == "hypernet" for kind, _ in tags):
        raise ApiError(422, "hypernetworks (<hypernet:...>) are not supported")
    if registry(engine, "loras") is None:
        names = ", ".join(sorted({n for _, n in tags}))
        raise ApiError(422, f"LoRA tags in the prompt ({names}) cannot be used: LoRA support is not available in "
                            f"this build yet")
    known = set()
    for item in loras(engine):
        known.update({item["name"], item["alias"]})
    missing = sorted({n for _, n in tags if n not in known})
    if missing:
        missing_after_refresh = sorted(set(missing) - {x for i in loras(engine, True) for x in (i["name"], i["alias"])})
        if missing_after_refresh:
            raise ApiError(404, f"LoRA not found: {', '.join(map(repr, missing_after_refresh))}. "
                                f"Available: {', '.join(sorted(known)) or 'none'}")
