"""Header: checkpoint dropdown (titles `name [hash]`) with refresh, VAE dropdown, model status.

Loading a checkpoint runs in the engine's queue from an event handler, so the page stays usable; a timer polls the
start-up load until it is done. When the model changes, width/height fields that still hold the previous model's
native size follow the new model's native size.
"""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from webui.ui.context import UiContext
from webui.ui.generation import DEFAULT_SIZE

VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")


def vae_files(ctx: UiContext) -> list[str]:
    names = []
    for folder in ctx.engine.settings.vae_search_dirs:
        if Path(folder).is_dir():
            names += sorted(p.name for p in Path(folder).rglob("*") if p.suffix.lower() in VAE_SUFFIXES)
    return names


class Header:
    def __init__(self, ctx: UiContext):
        self.ctx = ctx

    def build(self) -> "Header":
        engine = self.ctx.engine
        supports_vae = callable(getattr(engine, "select_vae", None))
        with gr.Row(elem_classes="ls-header", equal_height=True):
            self.checkpoint = gr.Dropdown(self.titles(), value=self.active_title(), label="Stable Diffusion checkpoint",
                                          elem_id="checkpoint_dropdown", scale=5, min_width=280, interactive=True)
            self.refresh_btn = gr.Button("↻", elem_id="checkpoint_refresh", scale=0, min_width=48,
                                         elem_classes="ls-icon-btn")
            self.vae = gr.Dropdown(["Automatic", "None", *vae_files(self.ctx)], value="Automatic", label="SD VAE",
                                   elem_id="vae_dropdown", scale=3, min_width=200, interactive=supports_vae)
            with gr.Column(scale=3, min_width=240, elem_classes="ls-model-status"):
                self.model_status = gr.HTML(self.status_html(), elem_id="model_status", js_on_load=None)
        self.timer = gr.Timer(1.0, active=True)
        self.native = gr.State(None)  # native size applied to the width/height fields so far
        if self.ctx.notice:
            gr.HTML(f'<div class="ls-notice">{html.escape(self.ctx.notice)}</div>', elem_id="settings_notice",
                    js_on_load=None)
        return self

    # ---- state ----------------------------------------------------------------------------------------
    def titles(self, refresh: bool = False) -> list[str]:
        return [c.title for c in self.ctx.engine.list_checkpoints(refresh=refresh)]

    def active_title(self) -> str | None:
        model = self.ctx.engine.models.active
        return model.title if model is not None else None

    def status_html(self) -> str:
        st = self.ctx.status
        model = self.ctx.engine.models.active
        if st.busy:
            what = "the default checkpoint" if st.target == "default" else st.target
            return f'<span class="ls-loading">Loading {html.escape(str(what))}…</span>'
        if st.error:
            return f'<span class="ls-error-text">{html.escape(st.error)}</span>'
        if model is None:
            return '<span class="ls-muted">No checkpoint loaded</span>'
        w, h = model.spec.native_size
        dev = self.ctx.engine.device.describe().split(",")[0]
        return (f'<span class="ls-ok-text">{html.escape(model.spec.label)} · native {w}x{h} · '
                f'{html.escape(dev)}</span>')

    def native_size(self) -> tuple[int, int] | None:
        model = self.ctx.engine.models.active
        return tuple(model.spec.native_size) if model is not None else None

    def follow_native(self, old, sizes: list) -> tuple[object, list]:
        """New native state and width/height values (gr.skip() where the user changed them)."""
        new = self.native_size()
        if new is None or tuple(old or ()) == new:
            return old, [gr.skip()] * len(sizes)
        prev = tuple(old) if old else (DEFAULT_SIZE, DEFAULT_SIZE)
        out = []
        for i, v in enumerate(sizes):
            axis = i % 2  # sizes come as w, h, w, h ...
            out.append(new[axis] if v is None or int(v) == prev[axis] else gr.skip())
        return list(new), out

    # ---- handlers (wired in webui.ui.build_ui, which knows the size fields) --------------------------
    def tick(self, native, *sizes):
        """Timer: reflect the start-up load; stops itself once nothing is loading."""
        st = self.ctx.status
        native, size_updates = self.follow_native(native, list(sizes))
        done = not st.busy
        dropdown = gr.update(choices=self.titles(), value=self.active_title()) if done else gr.skip()
        return [dropdown, self.status_html(), native, gr.Timer(active=not done), *size_updates]

    def switch(self, title, native, *sizes):
        """Dropdown choice: load it (progress in the status line), then show what is active."""
        if not title or title == self.active_title():
            yield [gr.skip(), self.status_html(), native, *[gr.skip()] * len(sizes)]
            return
        self.ctx.status.busy = True
        self.ctx.status.target = title
        yield [gr.skip(), self.status_html(), native, *[gr.skip()] * len(sizes)]
        self.ctx.load_checkpoint(title)
        native, size_updates = self.follow_native(native, list(sizes))
        yield [gr.update(choices=self.titles(), value=self.active_title()), self.status_html(), native, *size_updates]

    def refresh(self):
        return gr.update(choices=self.titles(refresh=True), value=self.active_title()), self.status_html()

    def select_vae(self, name):
        engine = self.ctx.engine
        try:
            engine.select_vae(None if name == "Automatic" else name)
        except Exception as exc:  # noqa: BLE001
            return f'<span class="ls-error-text">{html.escape(str(exc))}</span>'
        return self.status_html()
