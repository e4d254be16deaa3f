"""The ControlNet accordion: its units become the request's controlnet_units; the preview runs the module."""
from __future__ import annotations

import numpy as np
from PIL import Image


def test_accordion_units_to_request_and_preview(engine, tmp_path):
    import gradio as gr

    from tests.fixtures.tiny_controlnets import write_tiny_controlnet
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    folder = engine.settings.models_root / "ControlNet"
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_controlnet(folder / "tiny-control.safetensors", "sd1")
    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    cn = p.controlnet
    assert len(cn.units) == engine.settings.controlnet_unit_count == 3
    mask = Image.new("RGB", (64, 64))
    mask.paste((255, 255, 255), (30, 30, 50, 50))
    (title,) = engine.controlnet_models()
    data = {p.prompt: "a cat", p.negative: "", p.styles: [], p.sampler: "Euler", p.scheduler: "Automatic",
            p.steps: 2, p.width: 64, p.height: 64, p.n_iter: 1, p.batch_size: 1, p.cfg: 7.0, p.seed: 3,
            p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1}
    unit = cn.units[1]
    data.update({unit["enabled"]: True, unit["image"]: mask, unit["module"]: "invert (from white bg & black line)",
                 unit["model"]: title, unit["weight"]: 0.7, unit["guidance_start"]: 0.0, unit["guidance_end"]: 1.0,
                 unit["processor_res"]: 512, unit["threshold_a"]: -1, unit["threshold_b"]: -1,
                 unit["control_mode"]: "Balanced", unit["resize_mode"]: "Just Resize",
                 unit["pixel_perfect"]: False})
    request = p.make_request(data)
    (u,) = request.controlnet_units
    assert (u.model, u.weight, u.module) == (title, 0.7, "invert (from white bg & black line)")
    result = engine.generate(request)
    assert 'ControlNet 0: "Module: invert (from white bg & black line)' in result.infotexts[0]
    shown = np.asarray(cn.preview("invert", mask, 512, -1, -1))
    assert shown[0, 0, 0] == 255 and shown[40, 40, 0] == 0


def test_pasted_infotext_fills_the_units(engine, tmp_path):
    """A pasted image's "ControlNet N" entries set the units (model matched by name, units after them disabled),
    and the status line names a model that is not installed."""
    import gradio as gr

    from tests.fixtures.tiny_controlnets import write_tiny_controlnet
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    folder = engine.settings.models_root / "ControlNet"
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_controlnet(folder / "tiny-control.safetensors", "sd1")
    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    (title,) = engine.controlnet_models()
    infotext = ("a cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 64x64, "
                'ControlNet 0: "Module: canny, Model: tiny-control [0123456789], Weight: 0.6, '
                "Resize Mode: Just Resize, Processor Res: 256, Threshold A: 80, Threshold B: 160, "
                'Guidance Start: 0.1, Guidance End: 0.8, Pixel Perfect: True, Control Mode: Balanced", '
                'ControlNet 1: "Module: none, Model: gone-model [abcdef0123], Weight: 1"')
    values = dict(zip(p.paste_outputs(), p.paste_values(infotext)))
    first, second, third = p.controlnet.units
    assert [values[first[k]] for k in ("enabled", "module", "model", "weight", "processor_res", "threshold_a",
                                       "guidance_start", "guidance_end", "pixel_perfect", "resize_mode")] == \
        [True, "canny", title, 0.6, 256, 80, 0.1, 0.8, True, "Just Resize"]
    assert (values[second["enabled"]], values[second["model"]]) == (True, "None")
    assert values[third["enabled"]] is False
    assert "gone-model [abcdef0123] (not installed)" in values[p.status] and "ControlNet 0" not in values[p.status]
    plain = dict(zip(p.paste_outputs(), p.paste_values("a cat\nSteps: 2, Seed: 3")))
    assert all(isinstance(plain[first[k]], type(gr.skip())) for k in ("enabled", "model"))  # left alone
