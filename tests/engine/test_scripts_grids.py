"""Grids: the batch grid (saved in outputs/<mode>-grids/ with its infotext, first among the results), the grid_save
and return_grid settings, labels drawn with Pillow's own font, and scripts registered by an extension through the
same hook as the built-in ones."""
from __future__ import annotations

import datetime
import textwrap

import numpy as np
import pytest
from PIL import Image, ImageFont

from webui.engine.grids import Label, font, image_grid, labelled_grid
from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def req(**kw) -> GenerationRequest:
    base = dict(prompt="a red circle", steps=2, width=64, height=64, sampler_name="Euler", seed=500)
    base.update(kw)
    return GenerationRequest(**base)


def grid_files(engine, mode="txt2img"):
    return sorted((engine.settings.outputs_path / f"{mode}-grids").rglob("*.png"))


def test_a_batch_grid_is_saved_and_comes_first(engine):
    r = engine.generate(req(batch_size=2, n_iter=2, batch_grid=True))
    assert r.index_of_first_image == 1 and len(r.images) == 5 and len(r.paths) == 5
    grid, images = r.images[0], r.images[1:]
    assert grid.size == (128, 128) and r.seeds == [500, 500, 501, 502, 503]
    for k, image in enumerate(images):  # row by row, two across
        cell = px(grid)[64 * (k // 2):64 * (k // 2) + 64, 64 * (k % 2):64 * (k % 2) + 64]
        assert np.array_equal(cell, px(image))
    files = grid_files(engine)
    day = datetime.date.today().isoformat()
    assert [f.relative_to(engine.settings.outputs_path).as_posix() for f in files] == \
        [f"txt2img-grids/{day}/grid-0000.png"]
    assert r.paths[0] == files[0] and np.array_equal(px(Image.open(files[0])), px(grid))
    info = parse_infotext(read_infotext(Image.open(files[0])))
    assert info["Seed"] == "500" and info["Prompt"] == "a red circle"
    engine.generate(req(batch_size=2, batch_grid=True))
    assert [f.name for f in grid_files(engine)] == ["grid-0000.png", "grid-0001.png"]


def test_grid_settings_and_single_images(engine):
    assert len(engine.generate(req(batch_grid=True)).images) == 1  # one image: no grid
    assert len(engine.generate(req(batch_size=2)).images) == 2  # not asked for (CLI, scripts' sub-generations)
    engine.update_settings({"grid_save": False})
    r = engine.generate(req(batch_size=2, batch_grid=True))
    assert r.index_of_first_image == 1 and len(r.images) == 3 and not grid_files(engine)  # shown, not saved
    assert len(r.paths) == 2  # the two images' files
    engine.update_settings({"grid_save": True, "return_grid": False})
    r = engine.generate(req(batch_size=2, batch_grid=True))
    assert r.index_of_first_image == 0 and len(r.images) == 2 and len(grid_files(engine)) == 1  # saved, not shown
    r = engine.generate(req(batch_size=2, batch_grid=True, save_images=False))
    assert len(grid_files(engine)) == 1  # a request that saves nothing saves no grid


def test_img2img_grids_go_to_their_own_folder(engine):
    init = Image.new("RGB", (64, 64), (10, 200, 10))
    engine.generate(req(init_images=[init], n_iter=2, batch_grid=True))
    assert len(grid_files(engine, "img2img")) == 1 and not grid_files(engine)


def test_labels_use_pillows_scalable_font():
    assert isinstance(font(20), ImageFont.FreeTypeFont)
    cells = [Image.new("RGB", (64, 64), (255, 255, 255)) for _ in range(4)]
    plain = image_grid(cells)
    assert plain.size == (128, 128)
    labelled = labelled_grid(cells, 2, 2, [[Label("Seed: 1")], [Label("Seed: 2")]],
                             [[Label("Steps: 10")], [Label("a long label that has to wrap")]])
    left, top = labelled.width - 128, labelled.height - 128
    assert left >= 48 and top >= 12
    a = px(labelled)
    assert (a[:top, left:left + 64] < 128).any() and (a[:top, left + 64:] < 128).any()  # each column's label
    assert (a[top:top + 64, :left] < 128).any() and (a[top + 64:, :left] < 128).any()  # each row's
    off = labelled_grid(cells[:2], 2, 1, [[Label("red", False)], [Label("red", True)]], None)
    band = px(off)[:off.height - 64]
    grey = (np.abs(band - 153).max(axis=2) < 40) & (band[..., 0] < 220)
    assert grey[:, :64].sum() > grey[:, 64:].sum() and (band[:, 64:] < 60).any()  # off: grey; on: black


def test_an_extension_registers_a_script_like_the_built_in_ones(tmp_path, data_dir):
    from webui.engine.facade import Engine
    from webui.extensions import ExtensionManager
    from webui.settings import Settings

    ext = tmp_path / "extensions" / "twice"
    ext.mkdir(parents=True)
    (ext / "extension.py").write_text(textwrap.dedent('''
        from dataclasses import replace
        from webui.engine import Script, ScriptArg

        class Twice(Script):
            title = "Twice"
            modes = ("txt2img",)

            def args(self, ctx, mode):
                return [ScriptArg("Seed step", 10, 1, 100, 1, kind="slider")]

            def run(self, ctx, request, args):
                step = int(args[0]) if args else 10
                first = ctx.generate(request)
                second = ctx.generate(replace(request, seed=request.seed + step))
                first.images += second.images
                first.seeds += second.seeds
                return first

        def register(ext):
            ext.script(Twice())
    '''))
    manager = ExtensionManager(tmp_path / "extensions", tmp_path / "state.json")
    manager.discover()
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1"), hooks=manager.hooks)
    try:
        assert engine.list_scripts("txt2img") == ["prompt matrix", "prompts from file or textbox", "x/y/z plot",
                                                  "twice"]
        assert "twice" not in engine.list_scripts("img2img") and "sd upscale" in engine.list_scripts("img2img")
        info = [i for i in engine.script_info() if i["name"] == "twice"]
        assert info == [{"name": "twice", "is_alwayson": False, "is_img2img": False,
                         "args": [{"label": "Seed step", "value": 10, "minimum": 1, "maximum": 100, "step": 1,
                                   "choices": None}]}]
        job = engine.submit(req(script_name="TWICE", script_args=[5]))
        r = job.result(timeout=300)
        assert r.seeds == [500, 505] and job.state.job_no == 1  # one queue job, two batches
        single = engine.generate(req(seed=505)).images[0]
        assert np.array_equal(px(r.images[1]), px(single))
    finally:
        engine.close()


def test_unknown_script_is_refused_naming_the_scripts(engine):
    from webui.engine import ScriptNotFound

    with pytest.raises(ScriptNotFound) as err:
        engine.submit(req(script_name="Loopback"))
    assert "Loopback" in str(err.value) and "x/y/z plot" in str(err.value)
    with pytest.raises(ScriptNotFound):
        engine.submit(req(script_name="SD upscale"))  # an img2img script
