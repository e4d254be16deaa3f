"""A1111's "SD upscale" (img2img): the init image enlarged by an upscaler, then redrawn by img2img in tiles of the
request's width x height that overlap by `overlap` px, and put back together with the overlaps blended.

script_args, A1111's order: [info (ignored), overlap, upscaler (its index in the upscaler list, or its name),
scale_factor]; A1111's own test sends ["", 8, "Lanczos", 2.0]. As in A1111, the upscaler "None" keeps the image's
size (the tiles are still redrawn). Each of n_iter results uses seed + n; the tiles are batched batch_size at a time,
batch k with seed + n + k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from webui.engine import noise
from webui.engine.requests import GenerationRequest, GenerationResult, RequestError
from webui.engine.scripts.base import ArgReader, Script, ScriptArg

TITLE = "SD upscale"
MAX_TILES = 1024


@dataclass
class Upscale:
    overlap: int
    upscaler: str
    scale: float
    seed: int


class SdUpscale(Script):
    title = TITLE
    modes = ("img2img",)

    def args(self, ctx, mode: str) -> list[ScriptArg]:
        names = ctx.upscaler_names()
        return [ScriptArg("", "<p>Will upscale the image by the selected scale factor; use width and height sliders "
                              "to set tile size</p>", kind="html"),
                ScriptArg("Tile overlap", 64, 0, 256, 16, kind="slider"),
                ScriptArg("Upscaler", names[0], choices=names, kind="radio"),
                ScriptArg("Scale Factor", 2.0, 1.0, 4.0, 0.05, kind="slider")]

    def check(self, ctx, request: GenerationRequest, args: list) -> Upscale:
        r = ArgReader(TITLE, self.args(ctx, ctx.mode), args)
        if request.mask is not None:
            raise RequestError(f"{TITLE}: a mask is not used by SD upscale; send the image without one")
        names = ctx.upscaler_names()
        if isinstance(r.raw(2), (int, float)) and not isinstance(r.raw(2), bool):  # A1111's radio: an index
            upscaler = names[r.int(2, 0, len(names) - 1)]
        else:
            upscaler = ctx.resolve_upscaler(r.text(2, 1024))
        up = Upscale(r.int(1, 0, 2048), upscaler, r.number(3, 0.05, 16.0), noise.fix_seed(request.seed))
        width, height = self._size(ctx, request, up)
        tiles = len(tile_starts(width, tile_side(request.width, width), up.overlap)) * \
            len(tile_starts(height, tile_side(request.height, height), up.overlap))
        if tiles * request.n_iter > MAX_TILES:
            raise RequestError(f"{TITLE}: {tiles} tiles per image (at most {MAX_TILES} in all)")
        return up

    @staticmethod
    def _size(ctx, request: GenerationRequest, up: Upscale) -> tuple[int, int]:
        image = request.init_images[0]
        if up.upscaler == "None":
            return image.size
        width, height = int(image.width * up.scale) // 8 * 8, int(image.height * up.scale) // 8 * 8
        side = ctx.settings.max_image_side * 4
        if not (64 <= width <= side and 64 <= height <= side):
            raise RequestError(f"{TITLE}: the upscaled image would be {width}x{height} (each side from 64 to {side})")
        return width, height

    def run(self, ctx, request: GenerationRequest, up: Upscale) -> GenerationResult:
        width, height = self._size(ctx, request, up)
        image = request.init_images[0].convert("RGB")
        big = image if up.upscaler == "None" else ctx.upscale(image, up.upscaler, width, height)
        tw, th = tile_side(request.width, width), tile_side(request.height, height)
        boxes = [(x, y) for y in tile_starts(height, th, up.overlap) for x in tile_starts(width, tw, up.overlap)]
        per = max(1, request.batch_size)
        ctx.begin(math.ceil(len(boxes) / per) * request.n_iter)
        out = GenerationResult(width=width, height=height)
        for n in range(request.n_iter):
            if ctx.interrupted:
                break
            tiles, first = self._redraw(ctx, request, big, boxes, tw, th, up.seed + n, up)
            if first is None:
                break
            combined = blend_tiles(tiles, boxes, (width, height), tw, th)
            info = first.infotexts[0]
            path = ctx.save_image(combined, info, up.seed + n, request)
            _append(out, combined, info, first, path)
            out.model_title, out.params = first.model_title, dict(first.params)
        return out

    def _redraw(self, ctx, request, big: Image.Image, boxes, tw: int, th: int, seed: int, up: Upscale):
        """Every tile through img2img (batch_size at a time); the first batch's result gives the infotext."""
        crops = [big.crop((x, y, x + tw, y + th)) for x, y in boxes]
        per, tiles, first = max(1, request.batch_size), [], None
        for k in range(0, len(crops), per):
            chunk = crops[k:k + per]
            sub = replace(request, init_images=chunk, batch_size=len(chunk), n_iter=1, width=tw, height=th,
                          seed=seed + k // per, resize_mode=0, save_images=False, batch_grid=False,
                          extra_generation_params={**request.extra_generation_params, "SD upscale overlap": up.overlap,
                                                   "SD upscale upscaler": up.upscaler})
            res = ctx.generate(sub)
            if len(res.images) < len(chunk):  # interrupted or skipped: no whole image to put together
                return tiles, None
            first = first or res
            tiles += res.images[:len(chunk)]
        return tiles, first


def _append(out: GenerationResult, image: Image.Image, info: str, res: GenerationResult, path) -> None:
    out.images.append(image)
    out.infotexts.append(info)
    out.seeds.append(res.seeds[0])
    out.subseeds.append(res.subseeds[0])
    out.prompts.append(res.prompts[0])
    out.negative_prompts.append(res.negative_prompts[0])
    out.warnings += [w for w in res.warnings if w not in out.warnings]
    if path is not None:
        out.paths.append(path)


def tile_side(wanted: int | None, side: int) -> int:
    """The tile's side: the request's width (or height), no bigger than the image, a multiple of 8."""
    tile = min(wanted or 512, side) // 8 * 8
    if tile < 64:
        raise RequestError(f"{TITLE}: the image is {side} px on a side; tiles need at least 64")
    return tile


def tile_starts(side: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` px start along a side of `side` px: evenly spread from 0 to side - tile, as few as
    cover the side with at least `overlap` px shared by neighbours (A1111's split_grid)."""
    if side <= tile:
        return [0]
    overlap = min(overlap, tile - 8)
    count = math.ceil((side - overlap) / (tile - overlap))
    count = max(count, 2)
    step = (side - tile) / (count - 1)
    return [min(int(i * step), side - tile) for i in range(count)]


def blend_tiles(tiles: list[Image.Image], boxes: list[tuple[int, int]], size: tuple[int, int], tw: int,
                th: int) -> Image.Image:
    """The tiles put back at their places; where neighbours overlap, each fades linearly into the other."""
    width, height = size
    acc = np.zeros((height, width, 3), np.float64)
    weight = np.zeros((height, width, 1), np.float64)
    xs = sorted({x for x, _ in boxes})
    ys = sorted({y for _, y in boxes})
    for tile, (x, y) in zip(tiles, boxes):
        w = np.outer(_ramp(ys, y, th), _ramp(xs, x, tw))[..., None]
        acc[y:y + th, x:x + tw] += np.asarray(tile.convert("RGB"), np.float64)[:th, :tw] * w
        weight[y:y + th, x:x + tw] += w
    return Image.fromarray(np.clip(np.rint(acc / np.maximum(weight, 1e-12)), 0, 255).astype(np.uint8))


def _ramp(starts: list[int], start: int, tile: int) -> np.ndarray:
    """A tile's weights along one side: rising over the overlap with the previous tile, falling over the overlap
    with the next one, 1 elsewhere (never 0: every pixel keeps a weight)."""
    w = np.ones(tile)
    i = starts.index(start)
    if i > 0:
        lead = starts[i - 1] + tile - start
        if lead > 0:
            w[:lead] = np.minimum(w[:lead], (np.arange(lead) + 0.5) / lead)
    if i + 1 < len(starts):
        tail = start + tile - starts[i + 1]
        if tail > 0:
            w[tile - tail:] = np.minimum(w[tile - tail:], (np.arange(tail)[::-1] + 0.5) / tail)
    return w
