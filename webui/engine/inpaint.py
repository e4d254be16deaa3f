"""Inpainting as A1111 does it, for every face (UI, API, CLI): mask conventions, mask blur, masked content (fill,
original, latent noise, latent nothing), inpaint area (whole picture, or only masked with padding), mask invert,
and the final overlay that keeps the original outside the (blurred) mask. Pure Pillow; the latent fills are done
by the sample stage (they need the VAE).

Written here rather than taken from diffusers: its inpaint pipelines take a mask and an image, but A1111's
"only masked" crop, "fill" and overlay are what A1111 users' masks and habits expect.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from webui.engine.resize import resize_image

MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
LATENT_FILLS = {2: "latent noise", 3: "latent nothing"}
MAX_MASK_BLUR = 256


def mask_from_image(image: Image.Image) -> Image.Image:
    """A1111 convention: white = repaint. An RGBA mask that really uses transparency is read from its alpha
    channel (opaque = repaint), anything else from its brightness."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        return image.getchannel("A").point(lambda v: 255 if v > 128 else 0)
    return image.convert("L")


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """'fill' masked content: cover the masked area with colours spread in from the unmasked pixels, through
    premultiplied-alpha blurs from wide to sharp, so img2img starts from the surroundings' colours."""
    keep = ImageOps.invert(mask.convert("L").point(lambda v: 255 if v > 127 else 0))
    if keep.getextrema() == (0, 0):  # everything masked: nothing to fill from
        return image.convert("RGB")
    source = image.convert("RGB").convert("RGBA")
    source.putalpha(keep)
    premultiplied = source.convert("RGBa")
    out = Image.new("RGBA", image.size, (0, 0, 0, 0))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        layer = premultiplied.filter(ImageFilter.GaussianBlur(radius)) if radius else premultiplied
        layer = layer.convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(layer)
    base = Image.new("RGBA", image.size, (127, 127, 127, 255))
    base.alpha_composite(out)
    return base.convert("RGB")


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """'Only masked' area: the mask's bounding box plus `padding`, grown to the aspect ratio of width x height and
    kept inside the image. None when the mask is empty."""
    box = mask.point(lambda v: 255 if v > 127 else 0).getbbox()
    if box is None:
        return None
    w_img, h_img = mask.size
    x1, y1, x2, y2 = box
    x1, y1 = max(0, x1 - padding), max(0, y1 - padding)
    x2, y2 = min(w_img, x2 + padding), min(h_img, y2 + padding)
    w, h = x2 - x1, y2 - y1
    if w / h < width / height:
        new_w = min(w_img, round(h * width / height))
        x1 -= (new_w - w) // 2
        x2 = x1 + new_w
    else:
        new_h = min(h_img, round(w * height / width))
        y1 -= (new_h - h) // 2
        y2 = y1 + new_h
    x1, x2 = _inside(x1, x2, w_img)
    y1, y2 = _inside(y1, y2, h_img)
    return x1, y1, x2, y2


def _inside(lo: int, hi: int, limit: int) -> tuple[int, int]:
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > limit:
        lo, hi = max(0, lo - (hi - limit)), limit
    return lo, hi


def blur_mask(mask: Image.Image, blur_x: int, blur_y: int) -> Image.Image:
    if blur_x <= 0 and blur_y <= 0:
        return mask
    return mask.filter(ImageFilter.GaussianBlur((max(blur_x, 0), max(blur_y, 0))))


@dataclass
class Overlay:
    """How to put a generated image back over the original: paste into `box` (only masked) and keep the
    original outside the blurred mask."""
    original: Image.Image  # init image at the output size, before any fill
    mask: Image.Image  # blurred mask at the output size (white = generated)
    box: tuple[int, int, int, int] | None = None

    def apply(self, generated: Image.Image) -> Image.Image:
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            placed = self.original.copy()
            placed.paste(generated.convert("RGB").resize((x2 - x1, y2 - y1), Image.LANCZOS), (x1, y1))
            generated = placed
        return Image.composite(generated.convert("RGB"), self.original, self.mask)


@dataclass
class InpaintPlan:
    """What the sample stage gets (model inputs) and what the overlay stage puts back."""
    inits: list[Image.Image]  # the model's starting images (cropped to the masked area, filled)
    mask: Image.Image  # the model's mask, same size (white = repaint)
    overlays: list[Overlay]  # one per original
    latent_fill: str | None  # "latent noise" / "latent nothing": done on the latents by the sample stage
    params: dict  # infotext parameters (A1111's names)


def plan_inpaint(originals: list[Image.Image], mask: Image.Image, width: int, height: int, *, blur_x: int,
                 blur_y: int, fill: int, only_masked: bool, padding: int) -> InpaintPlan:
    """`originals` and `mask` are already at the output size (mask: L, white = repaint, inverted if asked)."""
    box = crop_region(mask, padding, width, height) if only_masked else None
    overlay_mask = blur_mask(mask, blur_x, blur_y)
    if box is not None:
        inits = [resize_image(o.crop(box), width, height, 2) for o in originals]
        model_mask = resize_image(mask.crop(box), width, height, 2).convert("L")
    else:
        inits, model_mask = list(originals), mask
    if fill == 0:
        inits = [fill_masked(im, model_mask) for im in inits]
    params = {
        "Mask blur": blur_x if blur_x == blur_y else None, "Mask blur x": blur_x if blur_x != blur_y else None,
        "Mask blur y": blur_y if blur_x != blur_y else None, "Masked content": MASKED_CONTENT[fill],
        "Inpaint area": "Only masked" if box is not None else None,
        "Masked area padding": padding if box is not None else None,
    }
    return InpaintPlan(inits, model_mask, [Overlay(o, overlay_mask, box) for o in originals],
                       LATENT_FILLS.get(fill), params)
