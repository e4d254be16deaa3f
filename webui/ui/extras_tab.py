"""Extras tab (A1111's): upscale finished images - one image, a batch upload, or every image of a folder - by a
factor or to a size, with a second upscaler blended in. Results go to outputs/extras-images/ with "Postprocess"
keys in their infotext. The work is the engine's (`Engine.extras`)."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
from PIL import Image

from webui.engine import EngineError, ExtrasRequest
from webui.ui.context import UiContext

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SOURCES = ("Single Image", "Batch Process", "Batch from Directory")


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def inputs(source: str, single, batch, folder: str, allow_folders: bool) -> tuple[list[Image.Image], list[str]]:
    """(images, names) of the chosen source; ValueError with a message for the user."""
    if source == SOURCES[0]:
        if single is None:
            raise ValueError("Upload an image first")
        return [single], [""]
    if source == SOURCES[1]:
        files = [Path(getattr(f, "name", f)) for f in batch or []]
        if not files:
            raise ValueError("Upload some images first")
        return [Image.open(f) for f in files], [f.name for f in files]
    if not allow_folders:
        raise ValueError("Batch from a folder is off while the server is reachable from other machines (--listen, "
                         "--share) or with --hide-ui-dir-config")
    folder_path = Path(folder or "").expanduser()
    if not folder.strip() or not folder_path.is_dir():
        raise ValueError(f"Not a folder: {folder!r}")
    files = sorted(p for p in folder_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"No images (png, jpg, webp) in {folder_path}")
    return [Image.open(f) for f in files], [f.name for f in files]


def run(ctx: UiContext, source, single, batch, folder, scale_tab, by, to_w, to_h, crop, up1, up2, up2_vis,
        gfpgan, codeformer, codeformer_weight):
    try:
        images, names = inputs(source, single, batch, folder, not ctx.engine.settings.lock_folders)
        result = ctx.engine.extras(ExtrasRequest(
            images=images, names=names, resize_mode=int(scale_tab), upscaling_resize=float(by),
            upscaling_resize_w=int(to_w), upscaling_resize_h=int(to_h), upscaling_crop=bool(crop), upscaler_1=up1,
            upscaler_2=up2, extras_upscaler_2_visibility=float(up2_vis), gfpgan_visibility=float(gfpgan),
            codeformer_visibility=float(codeformer), codeformer_weight=float(codeformer_weight)))
    except (ValueError, OSError, EngineError) as exc:
        return gr.skip(), _msg(str(exc), "error")
    where = f" · saved in {result.paths[0].parent}" if result.paths else ""
    return result.images, _msg(f"{len(result.images)} image(s): {result.post or 'unchanged'}{where}")


def build(ctx: UiContext) -> dict:
    """The tab; returns its source choice and single image ({"source", "image"}) for "Send to extras"."""
    with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Source", elem_id="extras_source")
                single = gr.Image(type="pil", image_mode=None, label="Source image", height=320, format="png",
                                  sources=["upload", "clipboard"], elem_id="extras_image")
                batch = gr.File(file_count="multiple", file_types=["image"], label="Batch", elem_id="extras_batch")
                folder = gr.Textbox(label="Input directory", elem_id="extras_batch_input_dir",
                                    interactive=not ctx.engine.settings.lock_folders)
                scale_tab = gr.Radio(["Scale by", "Scale to"], value="Scale by", type="index", label="Resize",
                                     elem_id="extras_resize_mode")
                with gr.Row(elem_classes="ls-tight"):
                    by = gr.Slider(1, 8, value=2, step=0.05, label="Resize", elem_id="extras_upscaling_resize")
                    to_w = gr.Number(512, precision=0, label="Width", elem_id="extras_upscaling_resize_w")
                    to_h = gr.Number(512, precision=0, label="Height", elem_id="extras_upscaling_resize_h")
                    crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
                with gr.Row(elem_classes="ls-tight"):
                    up1 = gr.Dropdown(ctx.engine.list_upscalers(), value="Lanczos", label="Upscaler 1",
                                      elem_id="extras_upscaler_1")
                    up2 = gr.Dropdown(ctx.engine.list_upscalers(), value="None", label="Upscaler 2",
                                      elem_id="extras_upscaler_2")
                    up2_vis = gr.Slider(0, 1, value=0, step=0.01, label="Upscaler 2 visibility",
                                        elem_id="extras_upscaler_2_visibility")
                with gr.Accordion("Face restoration (needs a model in models/GFPGAN or models/Codeformer)",
                                  open=False):
                    gfpgan = gr.Slider(0, 1, value=0, step=0.01, label="GFPGAN visibility",
                                       elem_id="extras_gfpgan_visibility")
                    codeformer = gr.Slider(0, 1, value=0, step=0.01, label="CodeFormer visibility",
                                           elem_id="extras_codeformer_visibility")
                    codeformer_weight = gr.Slider(0, 1, value=0, step=0.01, label="CodeFormer weight",
                                                  elem_id="extras_codeformer_weight")
                go = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Column(scale=1, min_width=360):
                message = gr.HTML("", elem_id="extras_message", js_on_load=None)
                gallery = gr.Gallery(label="Results", format="png", columns=3, height=480, object_fit="contain",
                                     elem_id="extras_gallery", interactive=False)
    go.click(lambda *values: run(ctx, *values),
             [source, single, batch, folder, scale_tab, by, to_w, to_h, crop, up1, up2, up2_vis, gfpgan, codeformer,
              codeformer_weight], [gallery, message], api_visibility="private")
    return {"source": source, "image": single}
