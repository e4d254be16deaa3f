"""Extensions tab (installed extensions: enable/disable, their settings, load errors, install from a git URL), and
the tabs extensions add with `ext.ui_tab(title, build)`."""
from __future__ import annotations

import html
import logging

import gradio as gr

from webui.ui.context import UiContext

log = logging.getLogger(__name__)


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def _manager(ctx: UiContext):
    return ctx.extensions


def rows(manager) -> list[list[str]]:
    out = []
    for e in manager.extensions.values():
        state = "error" if e.error else ("enabled" if e.enabled else "disabled")
        out.append([e.name, state, e.error or "", str(e.path)])
    return out


def setting_rows(ext) -> list[list[str]]:
    return [[k, ext.setting_labels.get(k, k), _show(v)] for k, v in ext.settings.items()]


def _show(v) -> str:
    return "true" if v is True else "false" if v is False else str(v)


def parse_value(text: str, like):
    """A typed setting value from the table's text, typed like the current value."""
    text = "" if text is None else str(text).strip()
    if isinstance(like, bool):
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"{text!r} is not true/false")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def build(ctx: UiContext) -> None:
    manager = _manager(ctx)
    if manager is None:
        return
    with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions") as tab:
        gr.Markdown(f"Extensions live in `{manager.folder}`. Disabling takes effect at once; enabling, installing "
                    "and new tabs need a restart.", elem_classes="ls-hint")
        table = gr.Dataframe(value=rows(manager), headers=["Extension", "State", "Error", "Folder"],
                             datatype=["str"] * 4, interactive=False, wrap=True, label="Installed",
                             elem_id="extensions_table", column_widths=["18%", "10%", "42%", "30%"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=360):
                pick = gr.Dropdown(list(manager.extensions), value=None, label="Extension", elem_id="extensions_pick")
                enabled = gr.Checkbox(label="Enabled", value=False, elem_id="extensions_enabled")
                settings = gr.Dataframe(headers=["Key", "Setting", "Value"], datatype=["str", "str", "str"],
                                        interactive=True, label="Settings (edit the Value column)",
                                        elem_id="extensions_settings", column_widths=["20%", "50%", "30%"])
                save_btn = gr.Button("Save", variant="primary", size="sm", elem_id="extensions_save")
            with gr.Column(scale=1, min_width=280):
                url = gr.Textbox(label="Install from git URL", placeholder="https://github.com/user/extension.git",
                                 elem_id="extensions_url")
                install_btn = gr.Button("Install", size="sm", elem_id="extensions_install")
                gr.Markdown("Refused while the server is reachable from other machines (--listen / --share).",
                            elem_classes="ls-hint")
        message = gr.HTML("", elem_id="extensions_message", js_on_load=None)

    def select(name):
        ext = manager.extensions.get(name)
        if ext is None:
            return False, []
        return ext.enabled, setting_rows(ext)

    def save(name, on, table_value):
        ext = manager.extensions.get(name)
        if ext is None:
            return gr.skip(), _msg("Pick an extension", "error")
        values = {}
        data = table_value.values.tolist() if hasattr(table_value, "values") else (table_value or [])
        try:
            for row in data:
                if not row or row[0] not in ext.settings:
                    continue
                values[row[0]] = parse_value(row[2], ext.settings[row[0]])
        except ValueError as exc:
            return gr.skip(), _msg(f"Not saved: {exc}", "error")
        if values:
            manager.update_settings(name, values)
        was = ext.enabled
        if bool(on) != was:
            manager.set_enabled(name, bool(on))
        note = ""
        if on and not was:
            note = " Restart to load it."
        return rows(manager), _msg(f"Saved {name}.{note}")

    def install(link):
        try:
            target = manager.install_from_url((link or "").strip(), exposed=ctx.exposed)
        except Exception as exc:  # noqa: BLE001 - refused, bad URL, git failure, offline
            return gr.skip(), _msg(f"Not installed: {exc}", "error")
        return rows(manager), _msg(f"Installed into {target}. Restart to load it.")

    pick.input(select, pick, [enabled, settings], api_visibility="private")
    save_btn.click(save, [pick, enabled, settings], [table, message], api_visibility="private")
    install_btn.click(install, url, [table, message], api_visibility="private")
    tab.select(lambda: rows(manager), None, table, api_visibility="private")


def build_extension_tabs(ctx: UiContext) -> None:
    """Tabs registered by active extensions; one that fails to build shows its error instead."""
    manager = _manager(ctx)
    if manager is None:
        return
    for ext in manager.extensions.values():
        if not ext.active:
            continue
        for title, builder in ext.tabs:
            with gr.Tab(title, elem_id=f"tab_ext_{ext.name}"):
                try:
                    builder(ctx.engine)
                except Exception as exc:  # an extension can never take the UI down
                    log.exception("extension %s: tab %r failed to build", ext.name, title)
                    gr.Markdown(f"The extension **{ext.name}** failed to build this tab: `{exc}`")
