"""The Script dropdown: each script's controls come from its own argument list, and what the panel sends is the
A1111 script_args the API takes; an X/Y plot chosen in the UI makes the same grid as through the engine."""
from __future__ import annotations

import gradio as gr
import numpy as np

from webui.engine.requests import GenerationRequest


def panel(engine, mode="txt2img"):
    from webui.ui.scripts_panel import ScriptsPanel

    with gr.Blocks():
        return ScriptsPanel(engine, mode).build()


def test_the_dropdown_lists_the_scripts_of_each_tab(engine):
    assert panel(engine).dropdown.choices[0][0] == "None"
    names = [c[0] for c in panel(engine, "img2img").dropdown.choices]
    assert "sd upscale" in names and "x/y/z plot" in names
    assert "sd upscale" not in [c[0] for c in panel(engine).dropdown.choices]


def test_an_xy_plot_from_the_panel_is_the_grid_of_its_seeds(engine):
    p = panel(engine)
    assert p.request_fields({p.dropdown: "None"}) == {}
    title = "x/y/z plot"
    comps = dict(zip([a.label for a in p.args[title]], p.controls[title]))
    data = {p.dropdown: title, p.controls[title][1]: "3, 4", comps["Include Sub Images"]: True}  # X type: Seed
    fields = p.request_fields(data)
    assert fields["script_name"] == title and fields["script_args"][0] == "Seed"
    assert fields["script_args"][1] == "3, 4" and fields["script_args"][-1] is True  # text inputs
    base = dict(prompt="a red circle", steps=2, width=64, height=64, sampler_name="Euler")
    result = engine.generate(GenerationRequest(**base, **fields))
    singles = [engine.generate(GenerationRequest(**base, seed=s)).images[0] for s in (3, 4)]
    cells = [im for im in result.images if im.size == (64, 64)]
    assert len(cells) == 2 and result.images[0].width == 128 and result.images[0].height > 64  # grid + labels
    for cell, single in zip(cells, singles):
        assert np.array_equal(np.asarray(cell), np.asarray(single))


def test_the_tab_sends_the_chosen_script_with_its_request(engine):
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel

    with gr.Blocks():
        p = GenerationPanel(UiContext(engine), "txt2img").build()
    data = {comp: None for comp in p.scripts.inputs}
    data.update({p.prompt: "a cat", p.negative: "", p.styles: [], p.sampler: "Euler", p.scheduler: "Automatic",
                 p.steps: 2, p.width: 64, p.height: 64, p.n_iter: 1, p.batch_size: 1, p.cfg: 7.0, p.seed: 3,
                 p.subseed: -1, p.subseed_strength: 0.0, p.clip_skip: 1, p.scripts.dropdown: "prompt matrix"})
    req = p.make_request(data)
    assert req.script_name == "prompt matrix" and len(req.script_args) == len(p.scripts.args["prompt matrix"])
    data[p.scripts.dropdown] = "None"
    assert p.make_request(data).script_name is None
