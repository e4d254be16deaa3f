"""Inpainting in the engine, as A1111 has it: masked content (fill, original, latent noise, latent nothing), mask
invert, only-masked area and the overlay that keeps the original outside the mask."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError

INIT = Image.new("RGB", (64, 64), (30, 160, 90))
ImageDraw.Draw(INIT).rectangle((0, 0, 31, 63), fill=(200, 40, 40))
MASK = Image.new("L", (64, 64), 0)
ImageDraw.Draw(MASK).rectangle((24, 24, 47, 47), fill=255)
INSIDE = (slice(30, 42), slice(30, 42))
OUTSIDE = (slice(0, 12), slice(52, 64))


def inpaint(engine, **fields):
    req = GenerationRequest(prompt="a square", steps=3, width=64, height=64, seed=9, sampler_name="Euler",
                            checkpoint="tiny-sd1", init_images=[INIT], mask=MASK, denoising_strength=0.6,
                            mask_blur_x=0, mask_blur_y=0, **fields)
    result = engine.generate(req)
    return np.asarray(result.images[0], dtype=np.int16), parse_infotext(result.infotexts[0])


def test_masked_content_modes_start_from_different_latents(engine):
    inside = {}
    for fill in range(4):
        pixels, info = inpaint(engine, inpainting_fill=fill)
        assert info["Masked content"] == ["fill", "original", "latent noise", "latent nothing"][fill]
        assert np.abs(pixels[OUTSIDE] - np.asarray(INIT, dtype=np.int16)[OUTSIDE]).max() <= 1  # overlay keeps the original
        inside[fill] = pixels[INSIDE]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(inside[a] - inside[b]).mean() > 1, (a, b)


def test_inverted_mask_keeps_the_masked_area(engine):
    pixels, info = inpaint(engine, inpainting_mask_invert=1)
    assert info["Mask mode"] == "Inpaint not masked"
    assert np.abs(pixels[INSIDE] - np.asarray(INIT, dtype=np.int16)[INSIDE]).max() <= 1


def test_only_masked_area_is_recorded_and_kept_inside_the_picture(engine):
    pixels, info = inpaint(engine, inpaint_full_res=True, inpaint_full_res_padding=4)
    assert info["Inpaint area"] == "Only masked" and info["Masked area padding"] == "4"
    assert pixels.shape == (64, 64, 3)
    assert np.abs(pixels[OUTSIDE] - np.asarray(INIT, dtype=np.int16)[OUTSIDE]).max() <= 1


@pytest.mark.parametrize("field, value", [("inpainting_fill", 4), ("mask_blur_x", -1), ("inpaint_full_res_padding", -3),
                                          ("inpainting_mask_invert", 2)])
def test_bad_inpaint_values_are_refused_before_the_queue(engine, field, value):
    req = GenerationRequest(prompt="x", init_images=[INIT], mask=MASK, **{field: value})
    with pytest.raises(RequestError, match=field):
        engine.submit(req)
