"""Listings in A1111's shapes and request checks, read from the engine's registries."""
from __future__ import annotations

import re

from webui.api.errors import ApiError

NETWORK_TAG = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::[^>]*)?>", re.IGNORECASE)
LORA_TAG = NETWORK_TAG


def styles(engine) -> list[dict]:
    return [{"name": s.name, "prompt": s.prompt or "", "negative_prompt": s.negative_prompt or ""}
            for s in engine.styles.list()]


def loras(engine, refresh_first: bool = False) -> list[dict]:
    return [item.as_api() for item in engine.list_loras(refresh=refresh_first)]


def embeddings(engine) -> dict:
    return engine.list_embeddings()


def vaes(engine) -> list[dict]:
    return [v.as_api() for v in engine.list_vaes(refresh=True)]  # a folder scan, no hashing: cheap


def extensions(manager) -> list[dict]:
    if manager is None:
        return []
    return [{"name": e.name, "remote": None, "branch": None, "commit_hash": None, "version": None,
             "commit_date": None, "enabled": e.active} for e in manager.extensions.values()]


def refresh(engine, name: str) -> None:
    {"loras": lambda: engine.list_loras(refresh=True), "vaes": lambda: engine.list_vaes(refresh=True),
     "embeddings": lambda: engine.list_embeddings(refresh=True)}[name]()


def check_network_kinds(*prompts: str) -> None:
    """<hypernet:...> is refused by the API (422); LoRA names are resolved by the engine when the job is planned."""
    if any(m.group(1).lower() == "hypernet" for p in prompts if p for m in NETWORK_TAG.finditer(p)):
        raise ApiError(422, "hypernetworks (<hypernet:...>) are not supported")
