"""Listings in A1111's shapes and request checks, read from the engine's registries."""
from __future__ import annotations

import re

from webui.api.errors import ApiError
from webui.engine.networks import NetworkError

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


def check_styles(engine, names: list[str]) -> None:
    missing = [n for n in names if n not in engine.styles]
    if missing:
        raise ApiError(404, f"style(s) not found: {', '.join(map(repr, missing))}. "
                            f"Available: {', '.join(sorted(engine.styles.names())) or 'none'}")


def check_extra_networks(engine, *prompts: str) -> None:
    """<hypernet:...> is unsupported (422); an unknown LoRA is a 404 naming it (with close matches)."""
    tags = [(m.group(1).lower(), m.group(2).strip()) for p in prompts if p for m in NETWORK_TAG.finditer(p)]
    if any(kind == "hypernet" for kind, _ in tags):
        raise ApiError(422, "hypernetworks (<hypernet:...>) are not supported")
    for _, name in tags:
        try:
            engine.networks.loras.resolve(name)
        except NetworkError as exc:
            raise ApiError(404, str(exc)) from exc
