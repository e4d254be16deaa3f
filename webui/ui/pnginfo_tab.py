"""PNG Info tab: drop an image, read its parameters (PNG text chunk, or EXIF UserComment for JPEG/WebP), see every
key as a table, send them to txt2img or img2img with every field filled (the tab says what it could not restore)."""
from __future__ import annotations

import html

import gradio as gr

from webui.engine.image_files import read_infotext
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel
from webui.ui.params import parameter_rows


def read(path) -> tuple[str, str]:
    """(the infotext, or why there is none; every key of it as an HTML table)."""
    if not path:
        return "", ""
    try:
        text = read_infotext(path)
    except Exception as exc:  # noqa: BLE001 - a broken file
        return f"Could not read this image: {exc}", ""
    if not text:
        return "This image carries no generation parameters.", ""
    return text, table_html(parameter_rows(text))


def table_html(rows: list[list[str]]) -> str:
    """All rows, none hidden behind a scroll box."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="ls-kv">{body}</table>' if rows else ""


def build(ctx: UiContext, panels: dict[str, GenerationPanel], tabs: gr.Tabs) -> None:
    with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(type="filepath", image_mode=None, label="Source image",
                                 sources=["upload", "clipboard"],
                                 elem_id="pnginfo_image", height=420, format="png")
            with gr.Column(scale=1, min_width=360):
                text = gr.Textbox(label="Parameters", lines=6, max_lines=20, interactive=False, elem_id="pnginfo_text",
                                  buttons=["copy"])
                with gr.Row(elem_classes="ls-tight"):
                    to_t2i = gr.Button("Send to txt2img", variant="primary", size="sm", elem_id="pnginfo_send_txt2img")
                    to_i2i = gr.Button("Send to img2img", size="sm", elem_id="pnginfo_send_img2img")
                table = gr.HTML("", label="Fields", elem_id="pnginfo_table", js_on_load=None)

    image.change(read, image, [text, table], api_visibility="private")
    t2i, i2i = panels["txt2img"], panels["img2img"]
    t2i.on_paste(to_t2i.click, lambda t: [*t2i.paste_values(t), gr.Tabs(selected="txt2img")], text, [tabs])
    i2i.on_paste(to_i2i.click, lambda t, img: [*i2i.paste_values(t), _editor_value(img), gr.Tabs(selected="img2img")],
                 [text, image], [i2i.init_editor, tabs])


def _editor_value(path):
    if not path:
        return gr.skip()
    return {"background": path, "layers": [], "composite": path}
