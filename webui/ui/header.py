"""Header: checkpoint dropdown (titles `name [hash]`) with refresh, VAE dropdown, model status.

Loading a checkpoint runs in the engine's queue from an event handler, so the page stays usable; a timer polls the
start-up load until it is done. When the model changes, width/height fields that still hold the previous model's
native size follow the new model's native size.
"""
from __future__ import annotations

import html

import gradio as gr

from webui.ui.context import UiContext
from webui.ui.generation import DEFAULT_SIZE

def vae_choices(engine, refresh: bool = False) -> list[str]:
    """A1111's "SD VAE" choices: Automatic (the checkpoint's own, or a matching name.vae.* file), None, files."""
    return ["Automatic", "None", *(v.name for v in engine.list_vaes(refresh=refresh))]


def vae_choice(engine) -> str:
    return getattr(getattr(engine, "networks", None), "vae_choice", None) or "Automatic"


class Header:
    def __init__(self, ctx: UiContext):
        self.ctx = ctx

    def build(self) -> "Header":
        engine = self.ctx.engine
        with gr.Row(elem_classes="ls-header", equal_height=True):
            self.checkpoint = gr.Dropdown(self.titles(), value=self.active_title(), label="Stable Diffusion checkpoint",
                                          elem_id="checkpoint_dropdown", scale=5, min_width=280, interactive=True)
            self.refresh_btn = gr.Button("↻", elem_id="checkpoint_refresh", scale=0, min_width=48,
                                         elem_classes="ls-icon-btn")
            self.vae = gr.Dropdown(vae_choices(engine), value=vae_choice(engine), label="SD VAE",
                                   elem_id="vae_dropdown", scale=3, min_width=200)
            with gr.Column(scale=3, min_width=240, elem_classes="ls-model-status"):
                self.model_status = gr.HTML(self.status_html(), elem_id="model_status", js_on_load=None)
        self.message = gr.HTML(self.message_html(), elem_id="header_message", js_on_load=None,
                               visible=bool(self.message_html()))
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
        model = self.ctx.engine.active_model()
        return model.title if model is not None else None

    def status_html(self) -> str:
        """One short line: loading, or the active model's family and native size."""
        st = self.ctx.status
        model = self.ctx.engine.active_model()
        if st.busy:
            what = "the default checkpoint" if st.target == "default" else st.target
            return f'<span class="ls-loading">Loading {html.escape(str(what))}…</span>'
        if model is None:
            return '<span class="ls-error-text">No checkpoint loaded</span>'
        w, h = model.spec.native_size
        dev = self.ctx.engine.device.describe().split(",")[0]
        return (f'<span class="ls-ok-text">{html.escape(model.spec.label)} · native {w}x{h} · '
                f'{html.escape(dev)}</span>')

    def message_html(self, error: str | None = None) -> str:
        """A load error, full width under the header: shown to the page that asked for the load, and to every
        page while no model is loaded at all (e.g. no checkpoint found at start)."""
        model = self.ctx.engine.active_model()
        if error is None and model is None and not self.ctx.status.busy:
            error = self.ctx.status.error
        if not error:
            return ""
        still = f" Still using {html.escape(model.title)}." if model is not None else ""
        return f'<div class="ls-status ls-error">{html.escape(error)}{still}</div>'

    def message_update(self, error: str | None = None):
        text = self.message_html(error)
        return gr.update(value=text, visible=bool(text))

    def native_size(self) -> tuple[int, int] | None:
        model = self.ctx.engine.active_model()
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
        return [dropdown, self.status_html(), self.message_update() if done else gr.skip(), native,
                gr.Timer(active=not done), *size_updates]

    def switch(self, title, native, *sizes):
        """Dropdown choice: load it (progress in the status line), then show what is active."""
        if not title or title == self.active_title():
            yield [gr.skip(), self.status_html(), gr.skip(), native, *[gr.skip()] * len(sizes)]
            return
        self.ctx.begin_load(title)
        yield [gr.skip(), self.status_html(), gr.update(value="", visible=False), native, *[gr.skip()] * len(sizes)]
        error = self.ctx.load_checkpoint(title)
        native, size_updates = self.follow_native(native, list(sizes))
        yield [gr.update(choices=self.titles(), value=self.active_title()), self.status_html(),
               self.message_update(error), native, *size_updates]

    def apply_pasted(self, target, native):
        """After a paste: load the checkpoint and select the VAE it named, as choosing them in the dropdowns does.
        The pasted width/height stay (the native-size state moves to the new model). Outputs: checkpoint, model
        status, message, native, VAE, and the paste target, consumed (None)."""
        target = target or {}
        title, error = target.get("checkpoint"), None
        if title and title != self.active_title():
            self.ctx.begin_load(title)
            yield [gr.skip(), self.status_html(), gr.update(value="", visible=False), native, gr.skip(), None]
            error = self.ctx.load_checkpoint(title)
            native = list(self.native_size() or ()) or native
        vae, message = gr.skip(), self.message_update(error)
        if target.get("vae"):
            vae, vae_message = self.select_vae(target["vae"])
            message = message if error else vae_message
        yield [gr.update(choices=self.titles(), value=self.active_title()), self.status_html(), message, native, vae,
               None]

    def current(self):
        return gr.update(choices=self.titles(), value=self.active_title()), self.status_html()

    def refresh(self):
        """↻: rescan checkpoint and VAE folders."""
        engine = self.ctx.engine
        return (gr.update(choices=self.titles(refresh=True), value=self.active_title()), self.status_html(),
                gr.update(choices=vae_choices(engine, refresh=True), value=vae_choice(engine)))

    def select_vae(self, name):
        """Applies to the active model now (through the queue) and to later jobs; an error keeps the old VAE."""
        engine = self.ctx.engine
        try:
            engine.select_vae(name or "Automatic")
        except Exception as exc:  # noqa: BLE001 - NetworkError for an unknown name, a broken file ...
            return gr.update(value=vae_choice(engine)), self.message_update(f"VAE {name!r}: {exc}")
        return gr.update(value=vae_choice(engine)), self.message_update()
