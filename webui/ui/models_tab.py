"""Models tab: checkpoints with family, hash, size and cached/loaded state; load, unload, RAM cache size."""
from __future__ import annotations

import html
import threading
from pathlib import Path

import gradio as gr

from webui.settings import SettingError
from webui.ui.context import UiContext

HEADERS = ["Checkpoint", "Family", "SHA-256 (short)", "Size", "State"]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class FamilyCache:
    """Family label per file, read from the safetensors header (cheap); other files show their family once loaded."""

    def __init__(self):
        self._data: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def label(self, info, loaded: dict[str, str]) -> str:
        key_path = str(Path(info.path).resolve())
        if key_path in loaded:
            return loaded[key_path]
        p = Path(info.path)
        try:
            st = p.stat()
        except OSError:
            return "missing"
        key = (key_path, st.st_size, st.st_mtime)
        with self._lock:
            if key in self._data:
                return self._data[key]
        if p.is_dir() or p.suffix.lower() == ".safetensors":
            from webui.engine import inspect_checkpoint

            try:
                label = inspect_checkpoint(p).label
            except Exception:  # noqa: BLE001 - a broken file: say so, loading will explain
                label = "unreadable"
        else:
            return "? (shown once loaded)"
        with self._lock:
            self._data[key] = label
        return label


def table_rows(ctx: UiContext, families: FamilyCache, refresh: bool = False) -> list[list[str]]:
    engine = ctx.engine
    active = engine.active_model()
    cached = set(engine.model_cache().titles)
    loaded: dict[str, str] = {}
    if active is not None:
        loaded[str(Path(active.path).resolve())] = active.spec.label
    rows = []
    for info in engine.list_checkpoints(refresh=refresh):
        state = ""
        if active is not None and Path(active.path).resolve() == Path(info.path).resolve():
            state = "active"
        elif info.title in cached:
            state = "cached in RAM"
        rows.append([info.title, families.label(info, loaded), info.shorthash or "computed on load",
                     _size(info.size), state])
    return rows


def build(ctx: UiContext, header) -> None:
    engine = ctx.engine
    families = FamilyCache()
    with gr.Tab("Models", id="models", elem_id="tab_models") as tab:
        table = gr.Dataframe(value=None, headers=HEADERS, datatype=["str"] * 5, interactive=False, wrap=True,
                             label="Checkpoints", elem_id="models_table", max_height=460,
                             column_widths=["40%", "14%", "18%", "12%", "16%"])
        with gr.Row(elem_classes="ls-tight ls-align-end"):
            pick = gr.Dropdown(header.titles(), value=header.active_title(), label="Checkpoint", scale=4,
                               elem_id="models_pick", min_width=260)
            load_btn = gr.Button("Load", size="md", variant="primary", scale=0, elem_id="models_load", min_width=90,
                                 elem_classes="ls-inline-btn")
            unload_btn = gr.Button("Unload all", size="md", scale=0, elem_id="models_unload", min_width=110,
                                 elem_classes="ls-inline-btn")
            refresh_btn = gr.Button("↻ Rescan folders", size="md", scale=0, elem_id="models_refresh", min_width=150,
                                 elem_classes="ls-inline-btn")
        with gr.Row(elem_classes="ls-tight ls-align-end"):
            cache = gr.Number(value=engine.model_cache().size, precision=0, minimum=1, maximum=16, scale=1,
                              label="Checkpoints kept in RAM", elem_id="models_cache_size", min_width=200)
            cache_btn = gr.Button("Apply cache size", size="md", scale=0, elem_id="models_cache_apply", min_width=150,
                                 elem_classes="ls-inline-btn")
            info = gr.HTML("", elem_id="models_info", js_on_load=None)
        message = gr.HTML("", elem_id="models_message", js_on_load=None)

    def info_html():
        folders = ", ".join(str(d) for d in engine.settings.checkpoint_dirs)
        return (f'<div class="ls-hint">Device: {html.escape(engine.device.describe())} · files read from disk: '
                f'{engine.model_cache().loads} · folders: {html.escape(folders)}</div>')

    def show(refresh=False):
        """Table, checkpoint picker, info line, and the header's dropdown and status (kept in step)."""
        rows = table_rows(ctx, families, refresh)
        titles = [r[0] for r in rows]
        active = header.active_title()
        return [rows, gr.update(choices=titles, value=active), info_html(), gr.update(choices=titles, value=active),
                header.status_html()]

    skip = [gr.skip()] * 5

    def note(text, kind="ok"):
        return f'<div class="ls-status ls-{kind}">{html.escape(text)}</div>'

    def load(title):
        if not title:
            yield [*skip, note("Pick a checkpoint", "error")]
            return
        ctx.begin_load(title)
        yield [*skip[:4], header.status_html(), note(f"Loading {title}…", "info")]
        err = ctx.load_checkpoint(title)
        yield [*show(), note(err, "error") if err else note(f"Loaded {header.active_title() or title}")]

    def unload():
        try:
            engine.unload_checkpoint()
        except Exception as exc:  # noqa: BLE001
            return [*skip, note(str(exc), "error")]
        return [*show(), note("Unloaded; the next generation loads a checkpoint again")]

    def set_cache(n):
        try:
            engine.update_settings({"checkpoint_cache_size": n})  # checked, applied and saved
        except SettingError as exc:
            return [*skip, note(str(exc), "error")]
        return [*show(), note(f"Keeping up to {engine.model_cache().size} checkpoint(s) in RAM (saved to "
                              f"{engine.settings.settings_file.name})")]

    outs = [table, pick, info, header.checkpoint, header.model_status, message]
    load_btn.click(load, pick, outs, concurrency_limit=None, api_visibility="private")
    unload_btn.click(unload, None, outs, api_visibility="private")
    refresh_btn.click(lambda: [*show(True), ""], None, outs, api_visibility="private")
    cache_btn.click(set_cache, cache, outs, api_visibility="private")
    tab.select(lambda: [*show(False), ""], None, outs, api_visibility="private")
