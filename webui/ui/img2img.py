"""img2img tab: an uploaded image (optionally with a drawn inpaint mask) -> images."""
from __future__ import annotations

import gradio as gr

from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel


def build(ctx: UiContext) -> GenerationPanel:
    with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
        panel = GenerationPanel(ctx, "img2img").build()
    return panel
