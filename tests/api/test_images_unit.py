"""The API's image helpers, without a server."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.api.helpers import b64png, pattern_image, px
from webui.api.errors import ApiError
from webui.api.images import decode_image, encode_png, flatten
from webui.engine.inpaint import Overlay, crop_region, fill_masked, mask_from_image
from webui.engine.image_files import read_infotext


def test_decode_accepts_raw_data_urls_wrapped_and_unpadded_base64():
    img = pattern_image(16)
    raw = b64png(img)
    wrapped = "\n".join(raw[i:i + 60] for i in range(0, len(raw), 60))
    for text in (raw, b64png(img, prefix=True), wrapped, raw.rstrip("=")):
        assert np.array_equal(px(decode_image(text)), px(img))


@pytest.mark.parametrize("text", ["", "   ", "%%%", "aGVsbG8=", "data:image/png;base64,", "http://x/y.png"])
def test_decode_refuses_garbage_with_the_field_name(text):
    with pytest.raises(ApiError) as err:
        decode_image(text, "init_images[3]")
    assert err.value.status_code == 422 and "init_images[3]" in err.value.detail


def test_encode_png_embeds_the_infotext():
    import base64
    import io

    out = encode_png(pattern_image(8), "hello\nSteps: 2, Sampler: Euler, Seed: 1")
    img = Image.open(io.BytesIO(base64.b64decode(out)))
    assert read_infotext(img) == "hello\nSteps: 2, Sampler: Euler, Seed: 1"


def test_flatten_puts_transparency_on_white_and_masks_follow_a1111():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert flatten(rgba).getpixel((0, 0)) == (255, 255, 255)
    alpha_mask = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    alpha_mask.putpixel((1, 1), (0, 0, 0, 255))
    m = mask_from_image(alpha_mask)
    assert m.getpixel((1, 1)) == 255 and m.getpixel((0, 0)) == 0
    assert mask_from_image(Image.new("RGB", (2, 2), (255, 255, 255))).getpixel((0, 0)) == 255


def test_crop_region_pads_fits_the_aspect_and_stays_inside():
    m = Image.new("L", (100, 100), 0)
    m.paste(255, (40, 45, 50, 55))
    assert crop_region(m, 0, 64, 64) == (40, 45, 50, 55)
    x1, y1, x2, y2 = crop_region(m, 5, 128, 64)  # wide target: grows sideways
    assert (x2 - x1) == 2 * (y2 - y1) and x1 <= 35 and x2 >= 55
    corner = Image.new("L", (100, 100), 0)
    corner.paste(255, (0, 0, 10, 10))
    assert crop_region(corner, 20, 64, 64) == (0, 0, 30, 30)
    assert crop_region(Image.new("L", (10, 10), 0), 4, 64, 64) is None


def test_fill_masked_paints_the_hole_with_surrounding_colours():
    img = Image.new("RGB", (64, 64), (200, 30, 30))
    img.paste((0, 0, 255), (24, 24, 40, 40))  # a blue patch to be masked away
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 44, 44))
    out = px(fill_masked(img, mask))
    assert np.array_equal(out[:10, :10], px(img)[:10, :10])
    centre = out[30:34, 30:34].reshape(-1, 3).mean(0)
    assert centre[0] > 150 and centre[2] < 60  # red from around, not the blue that was there


def test_overlay_pastes_the_crop_back_and_keeps_the_outside():
    original = pattern_image(64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    generated = Image.new("RGB", (64, 64), (0, 255, 0))
    out = px(Overlay(original, mask, (16, 16, 48, 48)).apply(generated))
    assert np.array_equal(out[:16], px(original)[:16])
    assert (out[20:44, 20:44] == (0, 255, 0)).all()


def test_upscale_geometry():
    from webui.engine.extras import ExtrasRequest, resize
    from webui.engine.postprocess.upscalers import UpscalerLibrary
    from webui.engine.requests import RequestError

    img = pattern_image(30)
    builtin = UpscalerLibrary([])  # None, Lanczos, Nearest

    def geometry(**fields):
        return ExtrasRequest(images=[img], **fields)

    assert resize(img, "Lanczos", geometry(upscaling_resize=2.5), builtin).size == (75, 75)
    assert resize(img, "Lanczos", geometry(resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=32), builtin).size == (64, 32)
    assert resize(img, "Lanczos", geometry(resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=32,
                                           upscaling_crop=False), builtin).size == (64, 64)
    with pytest.raises(RequestError):
        resize(img, "Lanczos", geometry(upscaling_resize=1000), builtin)