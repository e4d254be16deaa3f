"""txt2img tab: prompt -> images."""
from __future__ import annotations

import gradio as gr

from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel


def build(ctx: UiContext) -> GenerationPanel:
    with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
        panel = GenerationPanel(ctx, "txt2img").build()
    return panel
