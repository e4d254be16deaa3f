"""Example extension: stamp a small text watermark on every generated image (before it is saved).

Shows: image post-processing, its own settings, an infotext field.
"""
from PIL import Image, ImageDraw, ImageFont


def register(ext):
    ext.setting("text", "", "Watermark text (empty: no watermark)")
    ext.setting("corner", "bottom-right", "Corner (top-left, top-right, bottom-left, bottom-right)")
    ext.setting("opacity", 0.6, "Opacity (0..1)")

    def stamp(image: Image.Image, ctx) -> Image.Image:
        text = str(ext.get("text") or "")
        if not text:
            return image
        base = image.convert("RGBA")
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        font = ImageFont.load_default(size=max(8, base.height // 16))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h, pad = right - left, bottom - top, max(2, base.height // 64)
        corner = str(ext.get("corner"))
        x = pad if "left" in corner else base.width - w - pad
        y = pad if "top" in corner else base.height - h - pad
        alpha = int(255 * min(1.0, max(0.0, float(ext.get("opacity")))))
        draw.rectangle((x - pad, y - pad, x + w + pad, y + h + pad), fill=(0, 0, 0, alpha // 2))
        draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255, alpha))
        return Image.alpha_composite(base, layer).convert("RGB")

    ext.image_postprocess(stamp, order=100)  # after other image hooks
    ext.infotext_fields(lambda request: {"Watermark": ext.get("text")} if ext.get("text") else {})
