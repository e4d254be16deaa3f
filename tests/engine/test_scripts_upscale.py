"""SD upscale on a tiny model: twice the size, the same pixels for the same seed, tiles redrawn by img2img and
blended where they overlap; the tiling itself checked on pixels."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest, RequestError
from webui.engine.scripts.sd_upscale import blend_tiles, tile_starts


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def picture() -> Image.Image:
    image = Image.new("RGB", (64, 64), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(230, 200, 40))
    return image


def req(**kw) -> GenerationRequest:
    base = dict(prompt="a yellow circle", steps=4, width=64, height=64, sampler_name="Euler", seed=21,
                init_images=[picture()], denoising_strength=0.5, save_images=False, script_name="SD upscale",
                script_args=["", 8, "Lanczos", 2.0])
    base.update(kw)
    return GenerationRequest(**base)


def test_sd_upscale_doubles_the_size_and_is_deterministic(engine):
    a = engine.generate(req())
    b = engine.generate(req())
    assert len(a.images) == 1 and a.images[0].size == (128, 128)
    assert np.array_equal(px(a.images[0]), px(b.images[0]))
    c = engine.generate(req(seed=22)).images[0]
    assert np.abs(px(a.images[0]) - px(c)).mean() > 1.0
    info = parse_infotext(a.infotexts[0])
    assert info["SD upscale overlap"] == "8" and info["SD upscale upscaler"] == "Lanczos"
    assert a.seeds == [21]


def test_each_tile_is_the_img2img_of_its_part_of_the_upscaled_image(engine):
    """Tiles of 64 over 128 px with 8 px overlap start at 0, 32 and 64: the top left corner (no neighbour there)
    is the top left tile's own img2img."""
    out = engine.generate(req()).images[0]
    big = picture().resize((128, 128), Image.LANCZOS)
    tile = engine.generate(GenerationRequest(prompt="a yellow circle", steps=4, width=64, height=64,
                                             sampler_name="Euler", seed=21, init_images=[big.crop((0, 0, 64, 64))],
                                             denoising_strength=0.5, save_images=False)).images[0]
    assert np.array_equal(px(out)[:32, :32], px(tile)[:32, :32])
    assert not np.array_equal(px(out)[:64, :64], px(tile))  # beyond the corner, neighbours blend in


def test_upscaler_by_index_batches_and_n_iter(engine):
    r = engine.generate(req(script_args=["", 16, 2, 2.0], batch_size=3, n_iter=2, save_images=True))  # 2: Nearest
    assert [im.size for im in r.images] == [(128, 128), (128, 128)] and r.seeds == [21, 22]
    assert "SD upscale upscaler: Nearest" in r.infotexts[0]
    saved = sorted((engine.settings.outputs_path / "img2img-images").rglob("*.png"))
    assert [p.name for p in saved] == ["00000-21.png", "00001-22.png"] and r.paths == saved
    assert Image.open(saved[0]).size == (128, 128)


def test_upscaler_none_keeps_the_size_as_a1111(engine):
    r = engine.generate(req(script_args=["", 8, "None", 2.0]))
    assert r.images[0].size == (64, 64)


@pytest.mark.parametrize("args, words", [
    (["", 8, "Warp", 2.0], ["Warp", "Lanczos"]),
    (["", -1, "Lanczos", 2.0], ["Tile overlap"]),
    (["", 8, "Lanczos", "big"], ["Scale Factor"]),
    (["", 8, 99, 2.0], ["Upscaler"]),
])
def test_bad_arguments_are_refused_before_the_queue(engine, args, words):
    with pytest.raises(RequestError) as err:
        engine.submit(req(script_args=args))
    assert all(w in str(err.value) for w in words)
    assert engine.queue.waiting == 0


def test_txt2img_has_no_sd_upscale(engine):
    with pytest.raises(RequestError, match="SD upscale"):
        engine.submit(req(init_images=[]))


def test_tile_starts_cover_the_side_with_the_overlap():
    assert tile_starts(128, 64, 8) == [0, 32, 64]
    assert tile_starts(64, 64, 8) == [0]
    assert tile_starts(40, 64, 8) == [0]
    for side, tile, overlap in ((1000, 512, 64), (777, 128, 32), (2048, 512, 0)):
        starts = tile_starts(side, tile, overlap)
        assert starts[0] == 0 and starts[-1] == side - tile
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blending_puts_an_image_back_exactly_and_fades_between_tiles():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (128, 160, 3), dtype=np.uint8))
    xs, ys = tile_starts(160, 64, 16), tile_starts(128, 64, 16)
    boxes = [(x, y) for y in ys for x in xs]
    tiles = [image.crop((x, y, x + 64, y + 64)) for x, y in boxes]
    assert np.array_equal(px(blend_tiles(tiles, boxes, image.size, 64, 64)), px(image))
    # two flat tiles side by side: left colour, a ramp over their overlap, right colour
    boxes = [(0, 0), (32, 0)]
    tiles = [Image.new("RGB", (64, 64), (0, 0, 0)), Image.new("RGB", (64, 64), (200, 200, 200))]
    row = px(blend_tiles(tiles, boxes, (96, 64), 64, 64))[10, :, 0]
    assert (row[:32] == 0).all() and (row[64:] == 200).all()
    assert (np.diff(row[32:64]) >= 0).all() and 0 < row[40] < row[56] < 200
