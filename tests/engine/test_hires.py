"""Hires fix in the engine: sizes, latent and pixel upscalers, determinism by seed, A1111's infotext, an interrupted
second pass that keeps the first pass, and bad fields refused before the queue."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError


def hires(**fields) -> GenerationRequest:
    base = dict(prompt="a red circle", steps=3, width=64, height=64, seed=12, sampler_name="Euler",
                checkpoint="tiny-sd1", enable_hr=True, denoising_strength=0.5)
    return GenerationRequest(**{**base, **fields})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_latent_hires_doubles_the_size_and_is_deterministic(engine):
    a, b = engine.generate(hires()), engine.generate(hires())
    assert a.images[0].size == (128, 128) and (a.width, a.height) == (128, 128)
    assert np.array_equal(pixels(a.images[0]), pixels(b.images[0]))
    info = parse_infotext(a.infotexts[0])
    assert (info["Size-1"], info["Size-2"]) == ("64", "64") and info["Hires upscale"] == "2.0" and info["Hires upscaler"] == "Latent"
    assert info["Denoising strength"] == "0.5" and "Hires steps" not in info
    assert Image.open(a.paths[0]).size == (128, 128)
    other = engine.generate(hires(seed=13))
    assert np.abs(pixels(other.images[0]) - pixels(a.images[0])).mean() > 1


def test_pixel_upscaler_resize_to_and_own_steps(engine):
    r = engine.generate(hires(hr_upscaler="lanczos", hr_resize_x=96, hr_second_pass_steps=4,
                              hr_sampler_name="DDIM", hr_prompt="a blue square"))
    assert r.images[0].size == (96, 96)
    info = parse_infotext(r.infotexts[0])
    assert info["Hires upscaler"] == "Lanczos" and (info["Hires resize-1"], info["Hires resize-2"]) == ("96", "0") and info["Hires steps"] == "4"
    assert info["Hires sampler"] == "DDIM" and info["Hires prompt"] == "a blue square"
    assert "Hires upscale" not in info
    latent = engine.generate(hires(hr_resize_x=96, hr_second_pass_steps=4, hr_sampler_name="DDIM",
                                   hr_prompt="a blue square"))
    assert np.abs(pixels(latent.images[0]) - pixels(r.images[0])).mean() > 1  # the upscaler matters


def test_an_interrupted_second_pass_keeps_the_first_pass(data_dir):
    from webui.engine.facade import Engine
    from webui.engine.hooks import Hooks
    from webui.settings import Settings

    hooks = Hooks()
    calls = []

    def interrupt_in_second_pass(state, step, latents):
        calls.append(step)
        if len(calls) == 4:  # 3 first-pass steps, then the first of the second pass
            state.interrupt()

    hooks.add("step", interrupt_in_second_pass, 0, SimpleNamespace(name="test", active=True))
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1"), hooks=hooks)
    try:
        r = engine.generate(hires(n_iter=2))
        assert r.interrupted and len(r.images) == 1 and r.images[0].size == (64, 64)
        info = parse_infotext(r.infotexts[0])
        assert "Hires upscaler" not in info and info["Size-1"] == "64"
        assert r.paths and Image.open(r.paths[0]).size == (64, 64)  # saved
    finally:
        engine.close()


@pytest.mark.parametrize("fields, words", [
    (dict(hr_upscaler="Nope"), "hr_upscaler"),
    (dict(hr_scale=float("nan")), "hr_scale"),
    (dict(hr_scale=40.0), "hr_scale"),
    (dict(hr_resize_x=-8), "hr_resize_x"),
    (dict(hr_scale=8.0, width=512, height=512), "second pass"),
    (dict(init_images=[Image.new("RGB", (64, 64))]), "enable_hr"),
    (dict(hr_checkpoint_name="no-such-model"), "no-such-model"),
])
def test_bad_hires_fields_are_refused_before_the_queue(engine, fields, words):
    with pytest.raises(RequestError, match=words):
        engine.plan(hires(**fields))


def test_second_pass_on_another_checkpoint(engine):
    from webui.ui.params import fields_from_infotext

    same = engine.generate(hires())
    other = engine.generate(hires(hr_checkpoint_name="tiny-sd1-b"))
    again = engine.generate(hires(hr_checkpoint_name="tiny-sd1-b"))
    assert other.images[0].size == (128, 128)
    assert np.array_equal(pixels(other.images[0]), pixels(again.images[0]))
    assert np.abs(pixels(other.images[0]) - pixels(same.images[0])).mean() > 1  # the second model made it
    info = parse_infotext(other.infotexts[0])
    b = engine.resolve_checkpoint("tiny-sd1-b")
    assert info["Model"] == "tiny-sd1" and info["Hires checkpoint"] == f"tiny-sd1-b [{b.shorthash}]"
    assert engine.active_model().title.startswith("tiny-sd1.safetensors")  # the chosen model stays active
    pasted = fields_from_infotext(other.infotexts[0])
    assert engine.plan(hires(hr_checkpoint_name=pasted["hr_checkpoint_name"])).hires.checkpoint.title == b.title
    assert engine.plan(hires(hr_checkpoint_name=engine.active_model().title)).hires.checkpoint is None


def test_another_family_needs_a_pixel_upscaler(engine):
    with pytest.raises(RequestError, match="latent space"):
        engine.generate(hires(hr_checkpoint_name="tiny-sdxl"))
    r = engine.generate(hires(hr_checkpoint_name="tiny-sdxl", hr_upscaler="Lanczos"))
    assert r.images[0].size == (128, 128) and parse_infotext(r.infotexts[0])["Hires checkpoint"].startswith("tiny-sdxl")
    assert engine.active_model().title.startswith("tiny-sd1.safetensors")
