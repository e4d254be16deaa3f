"""Extensions: folders in extensions/ whose entry point registers typed hooks (the engine's `Hooks`), UI tabs,
HTTP routes and settings. Discovery lives here, outside the engine; the engine only gets `manager.hooks`.

An extension is `extensions/<name>/extension.py` (or `__init__.py`) with a function `register(ext)`; `ext` is an
`ExtensionContext` with one method per hook kind. Hooks of all extensions run in a defined order: by the `order`
given at registration (default 0), then by extension name. An extension that fails to import, to register, or
raises in a hook is disabled with a clear message; the job goes on without it. Enabled/disabled state is kept in
`cache/extensions.json`.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import re
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from webui.engine import HOOK_KINDS, Hooks, ImageContext  # noqa: F401 - ImageContext: for extensions
from webui.settings import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Extension:
    name: str
    path: Path
    enabled: bool = True
    error: str | None = None
    settings: dict = field(default_factory=dict)
    setting_labels: dict = field(default_factory=dict)
    tabs: list = field(default_factory=list)  # (title, build(engine)) built inside the UI's Blocks
    routes: list = field(default_factory=list)  # (path, endpoint, methods)

    @property
    def active(self) -> bool:
        return self.enabled and self.error is None


class ExtensionContext:
    """Handed to an extension's `register(ext)`."""

    def __init__(self, manager: "ExtensionManager", ext: Extension):
        self._m, self._ext = manager, ext
        self.name = ext.name
        self.path = ext.path

    # hooks -------------------------------------------------------------------------------------------
    def prompt_transform(self, fn: Callable[[str, str, Any], tuple[str, str]], order: int = 0) -> None:
        """fn(prompt, negative_prompt, request) -> (prompt, negative_prompt); runs before parsing."""
        self._m.hooks.add("prompt", fn, order, self._ext)

    def request_transform(self, fn: Callable[[Any], Any], order: int = 0) -> None:
        """fn(request) -> request or None (changed in place); runs before generation."""
        self._m.hooks.add("request", fn, order, self._ext)

    def step_callback(self, fn: Callable[[Any, int, Any], None], order: int = 0) -> None:
        """fn(job_state, step_index, latents) after every sampling step."""
        self._m.hooks.add("step", fn, order, self._ext)

    def image_postprocess(self, fn: Callable[[Any, ImageContext], Any], order: int = 0) -> None:
        """fn(PIL image, ImageContext) -> image or None; after decoding, before saving."""
        self._m.hooks.add("image", fn, order, self._ext)

    def on_saved(self, fn: Callable[[Path, str, ImageContext], None], order: int = 0) -> None:
        """fn(path, infotext, ImageContext) once the image is on disk."""
        self._m.hooks.add("saved", fn, order, self._ext)

    def infotext_fields(self, fn: Callable[[Any], dict], order: int = 0) -> None:
        """fn(request) -> {key: value} added to every image's infotext."""
        self._m.hooks.add("infotext", fn, order, self._ext)

    def script(self, script: Any, order: int = 0) -> None:
        """A script for the Script dropdown and the API's script_name (webui/engine/scripts/base.py: `title`,
        `modes`, `args(ctx, mode)`, optional `check(ctx, request, args)`, `run(ctx, request, args)`)."""
        self._m.hooks.add("script", script, order, self._ext)

    # UI, API, settings ----------------------------------------------------------------------------
    def ui_tab(self, title: str, build: Callable[[Any], None]) -> None:
        """build(engine) is called inside a gradio Tab of that title."""
        self._ext.tabs.append((title, build))

    def api_route(self, path: str, endpoint: Callable, methods: tuple[str, ...] = ("GET",)) -> None:
        """Served at /ext/<extension name><path>."""
        self._ext.routes.append((path, endpoint, tuple(methods)))

    def setting(self, key: str, default: Any, label: str = "") -> Any:
        saved = self._m._saved_settings(self.name)
        self._ext.settings.setdefault(key, saved.get(key, default))
        self._ext.setting_labels[key] = label or key
        return self._ext.settings[key]

    def get(self, key: str) -> Any:
        return self._ext.settings.get(key)


class ExtensionManager:
    def __init__(self, folder: Path, state_file: Path):
        self.folder = Path(folder)
        self.state_file = Path(state_file)
        self.extensions: dict[str, Extension] = {}
        self.hooks = Hooks(on_error=lambda ext, message, detail: self._disable(ext, message, detail))
        self._lock = threading.Lock()
        self.messages: list[str] = []

    # ---- discovery -----------------------------------------------------------------------------------
    def discover(self) -> list[Extension]:
        state = self._state()
        if not self.folder.is_dir():
            return []
        for d in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            entry = next((d / f for f in ("extension.py", "__init__.py") if (d / f).exists()), None)
            if entry is None:
                continue
            ext = Extension(d.name, d, enabled=state.get("enabled", {}).get(d.name, True))
            self.extensions[d.name] = ext
            if not ext.enabled:
                continue
            try:
                module = _import(d.name, entry)
                register = getattr(module, "register", None)
                if not callable(register):
                    raise AttributeError("no register(ext) function")
                register(ExtensionContext(self, ext))
            except Exception as exc:  # an extension can never take the app down
                self._disable(ext, f"failed to load: {type(exc).__name__}: {exc}", traceback.format_exc())
        return list(self.extensions.values())

    def _disable(self, ext: Extension, message: str, detail: str = "") -> None:
        """An extension that failed (at load or in a hook) is switched off with a message; the app goes on."""
        ext.error = message
        text = f"Extension {ext.name!r} disabled: {message}"
        self.messages.append(text)
        log.error("%s\n%s", text, detail)

    # ---- state ---------------------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _saved_settings(self, name: str) -> dict:
        return self._state().get("settings", {}).get(name, {})

    def _save_state(self, mutate: Callable[[dict], None]) -> None:
        with self._lock:
            state = self._state()
            mutate(state)
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.state_file, json.dumps(state, indent=1))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Persisted; takes effect for hooks at once when disabling, on the next start when enabling."""
        ext = self.extensions[name]
        ext.enabled = bool(enabled)
        self._save_state(lambda s: s.setdefault("enabled", {}).__setitem__(name, bool(enabled)))

    def update_settings(self, name: str, values: dict) -> None:
        ext = self.extensions[name]
        ext.settings.update(values)
        self._save_state(lambda s: s.setdefault("settings", {}).__setitem__(name, dict(ext.settings)))

    def install_from_url(self, url: str, *, exposed: bool) -> Path:
        """git clone an extension. Refused when the server listens beyond localhost or shares: anyone reaching
        the page could otherwise run code on this machine."""
        if exposed:
            raise PermissionError("Installing extensions from a URL is disabled when the server is reachable from "
                                  "other machines (--listen or --share). Install it by copying the folder into "
                                  f"{self.folder} instead.")
        if not re.fullmatch(r"https://[\w.\-]+/[\w.\-/]+?(\.git)?", url):
            raise ValueError(f"not an https git URL: {url!r}")
        name = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
        target = self.folder / name
        if target.exists():
            raise FileExistsError(f"extension folder {target} already exists")
        subprocess.run(["git", "clone", "--depth", "1", url, str(target)], check=True, capture_output=True, timeout=300)
        return target


def _import(name: str, entry: Path):
    mod_name = "latent_studio_ext_" + re.sub(r"\W", "_", name)
    spec = importlib.util.spec_from_file_location(mod_name, entry,
                                                  submodule_search_locations=[str(entry.parent)] if entry.name == "__init__.py" else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def load_extensions(settings) -> ExtensionManager:
    """The extensions of the data folder, discovered and registered (state kept in cache/extensions.json)."""
    manager = ExtensionManager(settings.extensions_path, settings.cache_path / "extensions.json")
    manager.discover()
    return manager
