"""The engine's extension points: typed hooks that run at fixed places of a job. The engine owns the hook points;
who registers hooks (the extension folders, tests, a script) is decided outside and passed in.

Hooks of one kind run in order: by `order` (default 0), then by owner name. A hook that raises is reported to
`on_error` (the extension manager disables its extension) and the job goes on without it.

A "script" hook is not called at a fixed place: it registers a script (webui/engine/scripts/base.py), which a request
names in `script_name` and which then runs the whole job (its errors are the job's errors).
"""
from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

HOOK_KINDS = ("prompt", "request", "step", "image", "saved", "infotext", "script")


class HookOwner(Protocol):
    name: str

    @property
    def active(self) -> bool: ...


@dataclass
class ImageContext:
    """What an image hook knows about the image it gets."""
    request: Any  # GenerationRequest
    index: int  # position in the job
    seed: int
    prompt: str
    negative_prompt: str
    params: dict  # infotext parameters so far


@dataclass
class Hook:
    kind: str
    fn: Callable
    order: int
    owner: HookOwner


def _report(owner: HookOwner, message: str, detail: str) -> None:
    log.error("hook of %s failed: %s\n%s", owner.name, message, detail)


class Hooks:
    def __init__(self, on_error: Callable[[HookOwner, str, str], None] = _report):
        self._hooks: list[Hook] = []
        self._lock = threading.Lock()
        self.on_error = on_error

    def add(self, kind: str, fn: Callable, order: int, owner: HookOwner) -> None:
        if kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook kind {kind!r} (known: {', '.join(HOOK_KINDS)})")
        with self._lock:
            self._hooks.append(Hook(kind, fn, int(order), owner))
            self._hooks.sort(key=lambda h: (h.order, h.owner.name))

    def of(self, kind: str) -> list[Hook]:
        return [h for h in self._hooks if h.kind == kind and h.owner.active]

    def _each(self, kind: str, *args):
        """(hook, its result) for every active hook of `kind` that did not raise."""
        for hook in self.of(kind):
            try:
                yield hook, hook.fn(*args)
            except Exception as exc:  # noqa: BLE001 - a hook never breaks the job
                self.on_error(hook.owner, f"{kind} hook raised {type(exc).__name__}: {exc}", traceback.format_exc())

    # ---- the hook points, in the order a job meets them ------------------------------------------------------
    def transform_request(self, request):
        """request hooks: fn(request) -> request or None (changed in place); when the job is planned."""
        for _, result in self._each("request", request):
            request = request if result is None else result
        return request

    def transform_prompts(self, prompt: str, negative: str, request) -> tuple[str, str]:
        """prompt hooks: fn(prompt, negative, request) -> (prompt, negative); before the prompts are parsed."""
        for hook in self.of("prompt"):
            try:
                prompt, negative = hook.fn(prompt, negative, request)
            except Exception as exc:  # noqa: BLE001
                self.on_error(hook.owner, f"prompt hook raised {type(exc).__name__}: {exc}", traceback.format_exc())
        return prompt, negative

    def infotext_params(self, request) -> dict:
        """infotext hooks: fn(request) -> {key: value} added to every image's infotext."""
        params: dict = {}
        for _, result in self._each("infotext", request):
            params.update(result or {})
        return params

    def step(self, state, step_index: int, latents) -> None:
        """step hooks: fn(job_state, step_index, latents) after every sampling step."""
        for _ in self._each("step", state, step_index, latents):
            pass

    def postprocess_image(self, image, ctx: ImageContext):
        """image hooks: fn(image, ImageContext) -> image or None; after decoding and inpaint overlay, before
        saving."""
        for _, result in self._each("image", image, ctx):
            image = image if result is None else result
        return image

    def scripts(self) -> list:
        """The registered scripts of active owners (script hooks: the hook's `fn` is the script object)."""
        return [h.fn for h in self.of("script")]

    def saved(self, path: Path, infotext: str, ctx: ImageContext) -> None:
        """saved hooks: fn(path, infotext, ImageContext) once the image is on disk."""
        for _ in self._each("saved", path, infotext, ctx):
            pass
