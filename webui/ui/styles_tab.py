"""Prompts tab: the styles library (styles.csv): create, edit, delete, apply to the current prompt."""
from __future__ import annotations

import html

import gradio as gr

from webui.engine import merge_prompts
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def build(ctx: UiContext, panels: dict[str, GenerationPanel]) -> None:
    store = ctx.styles
    with gr.Tab("Prompts", id="prompts", elem_id="tab_prompts"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                table = gr.Dataframe(value=_rows(store), headers=["Name", "Prompt", "Negative prompt"],
                                     datatype=["str", "str", "str"], interactive=False, wrap=True, max_height=520,
                                     label=f"Styles ({ctx.engine.settings.styles_file.name})", elem_id="styles_table",
                                     column_widths=["22%", "48%", "30%"])
                gr.Markdown("Use `{prompt}` in a style to place the current prompt there; otherwise the style is "
                            "appended after a comma.", elem_classes="ls-hint")
            with gr.Column(scale=2, min_width=320):
                pick = gr.Dropdown(store.names(), value=None, label="Edit style", elem_id="styles_pick",
                                   info="Pick a style to edit, or type a new name below")
                name = gr.Textbox(label="Name", elem_id="styles_name")
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="styles_prompt")
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="styles_negative")
                with gr.Row(elem_classes="ls-tight"):
                    save_btn = gr.Button("Save", variant="primary", elem_id="styles_save", size="sm")
                    delete_btn = gr.Button("Delete", variant="stop", elem_id="styles_delete", size="sm")
                    clear_btn = gr.Button("New", elem_id="styles_new", size="sm")
                with gr.Row(elem_classes="ls-tight"):
                    from_t2i = gr.Button("Copy from txt2img prompt", size="sm", elem_id="styles_copy_txt2img")
                    to_t2i = gr.Button("Apply to txt2img prompt", size="sm", elem_id="styles_apply_txt2img")
                    to_i2i = gr.Button("Apply to img2img prompt", size="sm", elem_id="styles_apply_img2img")
                message = gr.HTML("", elem_id="styles_message", js_on_load=None)

    dropdowns = [p.styles for p in panels.values()]

    def refreshed(selected=None):
        names = store.names()
        return [gr.update(value=_rows(store)), gr.update(choices=names, value=selected),
                *[gr.update(choices=names) for _ in dropdowns]]

    def load(choice):
        if not choice:
            return "", "", ""
        try:
            s = store.get(choice)
        except Exception:  # noqa: BLE001 - deleted meanwhile
            return choice, "", ""
        return s.name, s.prompt, s.negative_prompt

    def save(choice, new_name, p, n):
        new_name = (new_name or "").strip()
        try:
            if choice and choice in store:
                style = store.update(choice, p or "", n or "", new_name=new_name or choice)
                text = f"Saved style {style.name!r}"
            else:
                style = store.create(new_name, p or "", n or "")
                text = f"Created style {style.name!r}"
        except Exception as exc:  # StyleError, OSError
            return [gr.skip(), gr.skip(), *[gr.skip()] * len(dropdowns), _msg(str(exc), "error")]
        return [*refreshed(style.name), _msg(text)]

    def delete(choice, typed):
        target = choice or (typed or "").strip()
        try:
            store.delete(target)
        except Exception as exc:  # noqa: BLE001
            return [gr.skip(), gr.skip(), *[gr.skip()] * len(dropdowns), "", "", "", _msg(str(exc), "error")]
        return [*refreshed(None), "", "", "", _msg(f"Deleted style {target!r}")]

    def apply(p, n, sp, sn):
        return merge_prompts(sp or "", p or ""), merge_prompts(sn or "", n or "")

    pick.input(load, pick, [name, prompt, negative], queue=False, api_visibility="private")
    save_btn.click(save, [pick, name, prompt, negative], [table, pick, *dropdowns, message], api_visibility="private")
    delete_btn.click(delete, [pick, name], [table, pick, *dropdowns, name, prompt, negative, message],
                     api_visibility="private")
    clear_btn.click(lambda: (None, "", "", "", ""), None, [pick, name, prompt, negative, message], queue=False,
                    api_visibility="private")
    t2i = panels["txt2img"]
    from_t2i.click(lambda p, n: (p, n), [t2i.prompt, t2i.negative], [prompt, negative], queue=False,
                   api_visibility="private")
    for btn, panel in ((to_t2i, panels["txt2img"]), (to_i2i, panels["img2img"])):
        btn.click(apply, [panel.prompt, panel.negative, prompt, negative], [panel.prompt, panel.negative],
                  queue=False, api_visibility="private")


def _rows(store) -> list[list[str]]:
    return [[s.name, s.prompt, s.negative_prompt] for s in store.list()]
