"""Wildcards tab: browse models/wildcards, view and edit files, create new ones, preview expansions for a seed."""
from __future__ import annotations

import html

import gradio as gr

from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def build(ctx: UiContext, panels: dict[str, GenerationPanel]) -> None:
    wc = ctx.wildcards
    with gr.Tab("Wildcards", id="wildcards", elem_id="tab_wildcards"):
        gr.Markdown(f"Files in `{ctx.engine.settings.wildcards_path}`: one option per line; use `__name__` in a "
                    "prompt for a random line (seeded by the image seed), `{a|b|c}` for inline variants.",
                    elem_classes="ls-hint")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                files = gr.Radio(_safe_list(wc), label="Wildcard files", elem_id="wildcards_files",
                                 elem_classes="ls-file-list")
                refresh_btn = gr.Button("↻ Refresh", size="sm", elem_id="wildcards_refresh")
                new_name = gr.Textbox(label="New file", placeholder="e.g. animals or colors/warm",
                                      elem_id="wildcards_new_name")
                create_btn = gr.Button("Create", size="sm", elem_id="wildcards_create")
            with gr.Column(scale=2, min_width=360):
                current = gr.Textbox(label="Editing", interactive=False, elem_id="wildcards_current")
                content = gr.Textbox(label="Lines", lines=14, max_lines=30, elem_id="wildcards_content")
                with gr.Row(elem_classes="ls-tight"):
                    save_btn = gr.Button("Save", variant="primary", size="sm", elem_id="wildcards_save")
                    delete_btn = gr.Button("Delete", variant="stop", size="sm", elem_id="wildcards_delete")
                    insert_btn = gr.Button("Insert into txt2img prompt", size="sm", elem_id="wildcards_insert")
                message = gr.HTML("", elem_id="wildcards_message", js_on_load=None)
            with gr.Column(scale=2, min_width=320):
                template = gr.Textbox(label="Preview template", lines=2, elem_id="wildcards_template",
                                      placeholder="a __animals__ in a {red|blue} room")
                with gr.Row(elem_classes="ls-tight"):
                    seed = gr.Number(value=1, precision=0, label="Seed", elem_id="wildcards_seed")
                    count = gr.Slider(1, 20, value=5, step=1, label="How many", elem_id="wildcards_count")
                preview_btn = gr.Button("Preview", size="sm", elem_id="wildcards_preview")
                preview = gr.Textbox(label="Expansions (seed, seed+1, ...)", lines=8, interactive=False,
                                     elem_id="wildcards_preview_out")

    def refresh(selected=None):
        names = _safe_list(wc)
        return gr.update(choices=names, value=selected if selected in names else None)

    def open_file(name):
        if not name:
            return "", "", ""
        try:
            return name, wc.read(name), ""
        except Exception as exc:  # noqa: BLE001
            return name, "", _msg(str(exc), "error")

    def create(name):
        name = (name or "").strip().removesuffix(".txt")
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), _msg("Type a name for the new file", "error"), gr.skip()
        try:
            if wc.path_of(name).exists():
                return refresh(name), name, wc.read(name), _msg(f"__{name}__ already exists; opened it", "warn"), ""
            wc.write(name, "")
        except Exception as exc:  # noqa: BLE001 - WildcardError (bad name), OSError
            return gr.skip(), gr.skip(), gr.skip(), _msg(str(exc), "error"), gr.skip()
        return refresh(name), name, "", _msg(f"Created __{name}__"), ""

    def save(name, text):
        if not name:
            return gr.skip(), _msg("Open or create a file first", "error")
        try:
            wc.write(name, text if (text or "").endswith("\n") or not text else text + "\n")
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), _msg(str(exc), "error")
        return refresh(name), _msg(f"Saved __{name}__")

    def delete(name):
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), _msg("Nothing open", "error")
        try:
            wc.delete(name)
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), gr.skip(), gr.skip(), _msg(str(exc), "error")
        return refresh(None), "", "", _msg(f"Deleted __{name}__")

    def run_preview(tpl, s, n):
        if not (tpl or "").strip():
            return "Type a template, e.g. a __animals__ in a {red|blue} room"
        base = int(s if s is not None else 1)
        lines = []
        for i in range(int(n or 1)):
            try:
                lines.append(f"{base + i}: {wc.expand(tpl, base + i)}")
            except Exception as exc:  # noqa: BLE001 - WildcardError: missing file, loop, syntax
                return f"Error: {exc}"
        return "\n".join(lines)

    def insert(name, prompt):
        if not name:
            return prompt
        tag = f"__{name}__"
        return f"{prompt.rstrip()}, {tag}" if (prompt or "").strip() else tag

    files.input(open_file, files, [current, content, message], queue=False, api_visibility="private")
    refresh_btn.click(lambda: refresh(None), None, files, queue=False, api_visibility="private")
    create_btn.click(create, new_name, [files, current, content, message, new_name], api_visibility="private")
    save_btn.click(save, [current, content], [files, message], api_visibility="private")
    delete_btn.click(delete, current, [files, current, content, message], api_visibility="private")
    preview_btn.click(run_preview, [template, seed, count], preview, api_visibility="private")
    template.submit(run_preview, [template, seed, count], preview, api_visibility="private")
    t2i = panels["txt2img"]
    insert_btn.click(insert, [current, t2i.prompt], t2i.prompt, queue=False, api_visibility="private")


def _safe_list(wc) -> list[str]:
    if not wc.folder.is_dir():
        return []
    try:
        return wc.list_files()
    except Exception:  # noqa: BLE001 - a missing folder is just empty
        return []
