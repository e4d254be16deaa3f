"""Prompt matrix and prompts from file or textbox on a tiny model: the images are those of their prompts and seeds."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def req(**kw) -> GenerationRequest:
    base = dict(prompt="a circle", steps=2, width=64, height=64, sampler_name="Euler", seed=77, save_images=False)
    base.update(kw)
    return GenerationRequest(**base)


def single(engine, **kw) -> np.ndarray:
    return px(engine.generate(req(**kw)).images[0])


def test_prompt_matrix_makes_every_combination_and_a_labelled_grid(engine):
    r = engine.generate(req(prompt="a circle|red|on blue", script_name="prompt matrix",
                            script_args=[False, False, "positive", "comma", 0]))
    assert r.index_of_first_image == 1 and len(r.images) == 5
    assert r.prompts[1:] == ["a circle", "a circle, red", "a circle, on blue", "a circle, red, on blue"]
    assert r.seeds[1:] == [77] * 4
    grid = r.images[0]
    left, top = grid.width - 128, grid.height - 128
    assert left > 0 and top > 0  # a column label band ("red") and a row label band ("on blue")
    for k, prompt in enumerate(r.prompts[1:]):
        cell = px(grid)[top + 64 * (k // 2):top + 64 * (k // 2) + 64, left + 64 * (k % 2):left + 64 * (k % 2) + 64]
        assert np.array_equal(cell, single(engine, prompt=prompt))
        assert np.array_equal(px(r.images[k + 1]), cell)
    assert (px(grid)[:top, left:] < 128).any() and (px(grid)[top:, :left] < 160).any()


def test_prompt_matrix_options(engine):
    r = engine.generate(req(prompt="a circle", negative_prompt="blue|red", script_name="Prompt matrix",
                            script_args=[True, True, "negative", "space", 4]))
    assert r.negative_prompts[1:] == ["blue", "red blue"] and r.prompts[1:] == ["a circle", "a circle"]
    assert r.seeds[1:] == [77, 78]  # "Random seeds": one seed per combination
    grid = r.images[0]
    assert grid.width == 2 * 64 + 4  # one optional part: two columns, no row labels, a 4 px margin between
    assert (px(grid)[-64:, 64:68] == 255).all()
    with pytest.raises(RequestError, match="Prompt type"):
        engine.submit(req(script_name="prompt matrix", script_args=[False, False, "sideways"]))


PROMPTS = '''a red circle
--prompt "a blue square" --steps 3 --seed 42
--prompt "a green triangle" --negative_prompt "red" --cfg_scale 3 --n_iter 2 --seed 9

'''


def test_prompts_from_textbox_lines_with_their_own_settings(engine):
    r = engine.generate(req(prompt="", script_name="prompts from file or textbox",
                            script_args=[False, False, "start", PROMPTS]))
    assert r.index_of_first_image == 0 and len(r.images) == 4
    assert r.prompts == ["a red circle", "a blue square", "a green triangle", "a green triangle"]
    assert r.seeds[1:] == [42, 9, 10] and r.negative_prompts[2] == "red"
    info = parse_infotext(r.infotexts[1])
    assert info["Steps"] == "3" and info["Seed"] == "42"
    assert parse_infotext(r.infotexts[2])["CFG scale"] == "3.0"
    assert np.array_equal(px(r.images[1]), single(engine, prompt="a blue square", steps=3, seed=42))
    assert np.array_equal(px(r.images[3]), single(engine, prompt="a green triangle", negative_prompt="red",
                                                   cfg_scale=3, seed=10))


def test_prompts_are_joined_with_the_request_prompt_and_seeds_iterate(engine):
    r = engine.generate(req(prompt="on white", batch_size=2, script_name="Prompts from file or textbox",
                            script_args=[True, False, "end", "a circle\n--prompt square"]))
    assert r.prompts == ["on white a circle"] * 2 + ["on white square"] * 2
    assert r.seeds == [77, 78, 79, 80]  # "Iterate seed every line": each line starts after the last one's seeds
    r = engine.generate(req(seed=-1, script_name="Prompts from file or textbox",
                            script_args=[False, True, "start", "a\nb\nc"]))
    assert len(set(r.seeds)) == 1 and r.seeds[0] != -1  # "Use same random seed for all lines"


def test_bad_lines_are_refused_before_the_queue(engine):
    for text, word in (("--steps lots", "--steps lots"), ("", "empty"), ("--sd_model nope", "nope")):
        with pytest.raises(RequestError) as err:
            engine.submit(req(script_name="prompts from file or textbox", script_args=[False, False, "start", text]))
        assert word in str(err.value)
    assert engine.queue.waiting == 0
