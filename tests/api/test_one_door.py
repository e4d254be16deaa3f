"""The engine is the only door: one txt2img and one inpaint request, sent through the REST API and through the UI's
handlers, reach the same plan and the same saved file (pixels and infotext)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from tests.api.helpers import b64png
from webui.engine.image_files import read_infotext

INIT = Image.new("RGB", (64, 64), (40, 90, 200))
ImageDraw.Draw(INIT).ellipse((8, 8, 40, 40), fill=(230, 200, 30))
MASK = Image.new("L", (64, 64), 0)
ImageDraw.Draw(MASK).rectangle((16, 20, 52, 56), fill=255)

COMMON = dict(prompt="a yellow circle", negative_prompt="blurry", seed=321, steps=2, cfg_scale=6.0,
              sampler="Euler", width=64, height=64)
INPAINT = dict(denoising_strength=0.6, mask_blur=3, inpainting_fill=0, inpaint_full_res=1, padding=8,
               inpainting_mask_invert=0)


def api_body(mode: str) -> dict:
    body = {"prompt": COMMON["prompt"], "negative_prompt": COMMON["negative_prompt"],
            "seed": COMMON["seed"], "steps": COMMON["steps"], "cfg_scale": COMMON["cfg_scale"],
            "sampler_name": COMMON["sampler"], "scheduler": "Automatic", "width": 64, "height": 64,
            "save_images": True}
    if mode == "img2img":
        body.update(init_images=[b64png(INIT)], mask=b64png(MASK), denoising_strength=INPAINT["denoising_strength"],
                    mask_blur=INPAINT["mask_blur"], inpainting_fill=INPAINT["inpainting_fill"],
                    inpaint_full_res=bool(INPAINT["inpaint_full_res"]),
                    inpaint_full_res_padding=INPAINT["padding"], inpainting_mask_invert=0)
    return body


def ui_values(panel) -> dict:
    values = {panel.prompt: COMMON["prompt"], panel.negative: COMMON["negative_prompt"],
              panel.styles: [], panel.sampler: COMMON["sampler"], panel.scheduler: "Automatic",
              panel.steps: COMMON["steps"], panel.width: 64, panel.height: 64, panel.n_iter: 1, panel.batch_size: 1,
              panel.cfg: COMMON["cfg_scale"], panel.seed: COMMON["seed"], panel.subseed: -1,
              panel.subseed_strength: 0.0, panel.clip_skip: 1}
    if panel.mode == "img2img":
        layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        layer.paste((255, 255, 255, 153), mask=MASK)  # what the brush draws
        values.update({panel.init_editor: {"background": INIT, "layers": [layer], "composite": INIT},
                       panel.resize_mode: 0, panel.denoising: INPAINT["denoising_strength"],
                       panel.mask_blur: INPAINT["mask_blur"], panel.mask_mode: 0,
                       panel.masked_content: INPAINT["inpainting_fill"], panel.inpaint_area: INPAINT["inpaint_full_res"],
                       panel.padding: INPAINT["padding"]})
    return values


@pytest.fixture(scope="module")
def panels(server):
    import gradio as gr

    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    ctx = UiContext(server.engine)
    with gr.Blocks():
        return {m: GenerationPanel(ctx, m).build() for m in ("txt2img", "img2img")}


def essentials(plan) -> dict:
    """What a plan decides (the request's own bookkeeping fields aside: who saves, which model title is pinned)."""
    req = plan.request
    return {
        "mode": plan.mode, "sampler": (plan.sampler.sampler.name, plan.sampler.schedule), "seeds": plan.seeds,
        "prompts": (plan.prompts.prompts, plan.prompts.negative_prompts), "loras": plan.loras, "vae": plan.vae,
        "numbers": (req.steps, req.cfg_scale, req.width, req.height, req.denoising_strength, req.clip_skip,
                    req.resize_mode, req.subseed_strength),
        "inpaint": (req.mask_blur_x, req.mask_blur_y, req.inpainting_fill, req.inpaint_full_res,
                    req.inpaint_full_res_padding, req.inpainting_mask_invert),
        "images": [np.asarray(im.convert("RGB")).tobytes() for im in req.init_images],
        "mask": None if req.mask is None else np.asarray(req.mask.convert("L")).tobytes(),
    }


@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
def test_api_and_ui_reach_the_same_plan_and_file(server, panels, mode):
    from webui.api import translate

    engine = server.engine
    api_request = translate.prepare(engine, server.app.state.sdapi.options, _schema(mode)(**api_body(mode)),
                                    mode).request
    ui_request = panels[mode].make_request(ui_values(panels[mode]))
    assert essentials(engine.plan(api_request)) == essentials(engine.plan(ui_request))

    r = requests.post(f"{server.api}/{mode}", json=api_body(mode), timeout=120)
    assert r.status_code == 200, r.text
    api_file = newest(server, mode)
    time.sleep(0.01)
    ui_result = engine.generate(ui_request)
    ui_file = ui_result.paths[0]
    assert ui_file != api_file and ui_file.parent == api_file.parent  # same folder, next number
    a, b = Image.open(api_file), Image.open(ui_file)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert read_infotext(api_file) == read_infotext(ui_file)
    if mode == "img2img":
        info = read_infotext(ui_file)
        assert "Mask blur: 3" in info and "Masked content: fill" in info and "Inpaint area: Only masked" in info
        pixels = np.asarray(b, dtype=np.int16)
        outside = pixels[2:10, 50:62]  # far from the mask: the original, through the overlay
        assert np.abs(outside - np.array(INIT.getpixel((55, 5)))).max() <= 2


def newest(server, mode):
    files = sorted((server.data_dir / "outputs").glob(f"{mode}-images/*/*.png"))
    assert files, "the API saved nothing"
    return files[-1]


def _schema(mode):
    from webui.api import schemas

    return schemas.Txt2ImgRequest if mode == "txt2img" else schemas.Img2ImgRequest
