"""A1111's img2img resize modes, for init images and masks. Pure Pillow."""
from __future__ import annotations

from PIL import Image, ImageOps

def resize_image(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """A1111 resize modes: 0 just resize, 1 crop and resize (cover + centre crop), 2 resize and fill (fit + fill
    the margins by stretching the image's edge pixels)."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    if mode == 0:
        return image.resize((width, height), Image.LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        return ImageOps.fit(image, (width, height), Image.LANCZOS, centering=(0.5, 0.5))
    # mode 2
    if ratio < src_ratio:  # image is wider: fit width, fill top/bottom
        w, h = width, max(1, round(width * image.height / image.width))
    else:
        w, h = max(1, round(height * image.width / image.height)), height
    resized = image.resize((w, h), Image.LANCZOS)
    out = Image.new("RGB", (width, height))
    x, y = (width - w) // 2, (height - h) // 2
    out.paste(resized, (x, y))
    if h < height:
        if y > 0:
            out.paste(resized.crop((0, 0, w, 1)).resize((w, y)), (x, 0))
        bottom = height - (y + h)
        if bottom > 0:
            out.paste(resized.crop((0, h - 1, w, h)).resize((w, bottom)), (x, y + h))
    if w < width:
        if x > 0:
            out.paste(resized.crop((0, 0, 1, h)).resize((x, h)), (0, y))
        right = width - (x + w)
        if right > 0:
            out.paste(resized.crop((w - 1, 0, w, h)).resize((right, h)), (x + w, y))
    return out
