"""History tab: saved outputs by date, newest first, with their parameters; send them to txt2img / img2img."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from webui.engine.image_files import read_infotext
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MODES = ["All", "txt2img", "img2img"]
ALL_DATES = "All dates"
LIMIT = 300


def dates(root: Path) -> list[str]:
    root = Path(root)
    found = {p.name for p in root.glob("*-images/*") if p.is_dir()}
    return sorted(found, reverse=True)


def list_files(root: Path, mode: str, day: str) -> list[Path]:
    root = Path(root)
    mode_glob = "*" if mode in (None, "", "All") else mode
    day_glob = "*" if day in (None, "", ALL_DATES) else day
    files = [p for p in root.glob(f"{mode_glob}-images/{day_glob}/*") if p.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda p: (p.parent.name, p.stat().st_mtime, p.name), reverse=True)
    return files[:LIMIT]


def build(ctx: UiContext, panels: dict[str, GenerationPanel], tabs: gr.Tabs) -> None:
    with gr.Tab("History", id="history", elem_id="tab_history") as tab:
        with gr.Row(elem_classes="ls-tight ls-align-end"):
            mode = gr.Radio(MODES, value="All", label="Mode", elem_id="history_mode", scale=2, min_width=260)
            day = gr.Dropdown([ALL_DATES], value=ALL_DATES, label="Date", elem_id="history_date", scale=2,
                              min_width=200)
            refresh_btn = gr.Button("↻ Refresh", size="md", elem_id="history_refresh", scale=0, min_width=110,
                                    elem_classes="ls-inline-btn")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):
                gallery = gr.Gallery(label="Saved images", columns=5, height=520, allow_preview=True, preview=False,
                                     elem_id="history_gallery", format="png", interactive=False, object_fit="contain",
                                     buttons=["download", "fullscreen"])
            with gr.Column(scale=2, min_width=300):
                path_box = gr.Textbox(label="File", interactive=False, elem_id="history_path")
                info = gr.Textbox(label="Parameters", lines=8, max_lines=20, interactive=False,
                                  elem_id="history_infotext", buttons=["copy"])
                with gr.Row(elem_classes="ls-tight"):
                    to_t2i = gr.Button("Send to txt2img", size="sm", elem_id="history_send_txt2img")
                    to_i2i = gr.Button("Send to img2img", size="sm", elem_id="history_send_img2img")
                count = gr.HTML("", elem_id="history_count", js_on_load=None)
        files_state = gr.State([])

    root = lambda: ctx.engine.settings.outputs_path  # noqa: E731 - follows a changed outputs folder

    def show(m, d):
        ds = dates(root())
        d = d if d in ds else ALL_DATES
        files = list_files(root(), m, d)
        items = [(str(p), p.name) for p in files]
        more = f" (the newest {LIMIT})" if len(files) >= LIMIT else ""
        note = f'<div class="ls-hint">{len(files)} image(s){more} in {html.escape(str(root()))}</div>'
        return items, [str(p) for p in files], gr.update(choices=[ALL_DATES, *ds], value=d), note, "", ""

    def select(files, evt: gr.SelectData):
        idx = evt.index if isinstance(evt.index, int) else 0
        if not files or idx >= len(files):
            return "", ""
        path = files[idx]
        try:
            return path, read_infotext(path) or "(no parameters in this file)"
        except Exception as exc:  # noqa: BLE001
            return path, f"Could not read: {exc}"

    outs = [gallery, files_state, day, count, path_box, info]
    mode.change(show, [mode, day], outs, api_visibility="private")
    day.input(show, [mode, day], outs, api_visibility="private")
    refresh_btn.click(show, [mode, day], outs, api_visibility="private")
    gallery.select(select, files_state, [path_box, info], api_visibility="private")
    t2i, i2i = panels["txt2img"], panels["img2img"]
    t2i.on_paste(to_t2i.click, lambda t: [*t2i.paste_values(t), gr.Tabs(selected="txt2img")], info, [tabs])

    def send_i2i(t, p):
        editor = {"background": p, "layers": [], "composite": p} if p else gr.skip()
        return [*i2i.paste_values(t), editor, gr.Tabs(selected="img2img")]

    i2i.on_paste(to_i2i.click, send_i2i, [info, path_box], [i2i.init_editor, tabs])
    tab.select(show, [mode, day], outs, api_visibility="private")  # read the folder when the tab opens
