"""Images in and out of the API: base64 decoding with clear errors (and size limits checked before any pixel is
decoded), PNG encoding with the infotext embedded, and transparency flattened like A1111's img2img. Inpainting and
the Extras upscalers are the engine's (webui/engine/inpaint.py, extras.py). Pure Pillow."""
from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, ImageOps

from webui.api.errors import ApiError
from webui.engine.image_files import png_info_for, read_infotext

MAX_INPUT_PIXELS = 8192 * 8192  # decoded input images; bigger is refused before the pixels are read
# Each side too: a 1 x 60,000,000 PNG is under the pixel cap but resizing it needs a filter table per output pixel
# as long as the image (MemoryError, +1.3 GB). 16384 is the largest side WebP allows and well past any real input.
MAX_INPUT_SIDE = 16384
IMG2IMG_BACKGROUND = (255, 255, 255)  # A1111 img2img_background_color default: transparent areas become white


def _payload(data: str, field: str) -> bytes:
    if not isinstance(data, str) or not data.strip():
        raise ApiError(422, f"{field}: no image given (expected a base64-encoded image)")
    text = data.strip()
    if text.startswith(("http://", "https://")):
        raise ApiError(422, f"{field}: image URLs are not supported; send the image itself as base64")
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise ApiError(422, f"{field}: a data: URL must be base64 encoded (data:image/png;base64,...)")
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, f"{field}: invalid base64 data ({exc})") from None


def decode_image(data: str, field: str = "image") -> Image.Image:
    """A PIL image from raw base64 or a data: URL; ApiError(422) naming the field when it is not one."""
    raw = _payload(data, field)
    try:
        image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:
        raise ApiError(422, f"{field}: image too large ({exc})") from None
    except Exception:  # noqa: BLE001 - PIL raises many kinds for garbage
        raise ApiError(422, f"{field}: not a readable image (PNG, JPEG, WebP ...)") from None
    # Image.open only read the header: refuse by the claimed size before any pixel is decoded
    if image.width * image.height > MAX_INPUT_PIXELS or max(image.size) > MAX_INPUT_SIDE:
        raise ApiError(422, f"{field}: image too large ({image.width}x{image.height}; at most "
                            f"{MAX_INPUT_PIXELS // 1_000_000} megapixels and {MAX_INPUT_SIDE} pixels a side)")
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001
        raise ApiError(422, f"{field}: the image data is corrupt or truncated ({exc})") from None
    return image


def encode_png(image: Image.Image, infotext: str | None = None, extra: dict | None = None) -> str:
    """Raw base64 PNG (no data: prefix), with `infotext` in the 'parameters' text chunk like A1111."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=png_info_for(infotext, extra))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_text_items(image: Image.Image) -> tuple[str, dict]:
    """(infotext or "", other JSON-safe metadata items) like A1111's read_info_from_image."""
    info = read_infotext(image) or ""
    ignored = {"parameters", "exif", "icc_profile", "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi",
               "loop", "background", "timestamp", "duration", "progressive", "progression", "chromaticity",
               "photoshop", "transparency", "gamma", "aspect", "srgb"}
    items = {}
    for key, value in (image.info or {}).items():
        if not isinstance(key, str) or key in ignored:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, (str, int, float, bool)):
            items[key] = value
    return info, items


def flatten(image: Image.Image, background=IMG2IMG_BACKGROUND) -> Image.Image:
    """RGB; transparent areas over `background` (not the black that a bare convert('RGB') gives)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    return image.convert("RGB")
