"""Pictures of what was inspected: heat maps over the image, filmstrips, animations (WebP, Pillow) and the noise
level plot. Pillow only (no plotting library is a dependency)."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from webui.engine.grids import font
from webui.engine.image_files import exif_bytes_for
from webui.files import temp_name

# a perceptual colour ramp (dark blue -> teal -> yellow), as viridis-like stops
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """[h, w] in 0..1 -> [h, w, 3] uint8 on the ramp."""
    pos = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    low = np.floor(pos).astype(int).clip(0, len(_RAMP) - 2)
    frac = (pos - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)


def normalized(heat: torch.Tensor | np.ndarray) -> np.ndarray:
    """A map scaled to 0..1 (its own minimum and maximum; a flat map is all zeros)."""
    arr = np.asarray(heat, dtype=np.float32)
    span = float(arr.max() - arr.min())
    return (arr - arr.min()) / span if span > 0 else np.zeros_like(arr)


def heat_overlay(image: Image.Image, heat, alpha: float = 0.55) -> Image.Image:
    """The map (at latent resolution) upsampled to the image's size, coloured and blended over it."""
    colored = Image.fromarray(colorize(normalized(heat))).resize(image.size, Image.BICUBIC)
    return Image.blend(image.convert("RGB"), colored, alpha)


def strip(images: list[Image.Image], labels: list[str] | None = None, height: int = 128) -> Image.Image:
    """Frames side by side, each scaled to `height`, with an optional label under each."""
    frames = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST
                                       if im.height < height else Image.LANCZOS) for im in images]
    label_h = 18 if labels else 0
    out = Image.new("RGB", (sum(f.width for f in frames) + 2 * (len(frames) - 1), height + label_h), "white")
    draw, x = ImageDraw.Draw(out), 0
    for i, f in enumerate(frames):
        out.paste(f, (x, 0))
        if labels:
            draw.text((x + 2, height + 2), labels[i], fill="black", font=font(12))
        x += f.width + 2
    return out


def animation_bytes(frames: list[Image.Image], infotext: str | None = None, duration_ms: int = 200,
                    size: int | None = None) -> bytes:
    """An animated WebP (lossless, looping) of the frames, with the infotext in its EXIF like our stills."""
    frames = [f.convert("RGB") for f in frames]
    if size:
        frames = [f.resize((size, round(f.height * size / f.width)), Image.NEAREST if f.width < size
                           else Image.LANCZOS) for f in frames]
    buf = io.BytesIO()
    extra = {"exif": exif_bytes_for(infotext)} if infotext else {}
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0,
                   lossless=True, **extra)
    return buf.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / temp_name(path.name)
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return path


def noise_plot(sigmas: list[float], size: tuple[int, int] = (480, 240)) -> Image.Image:
    """The scheduler's noise level (sigma) per step, a line plot on a log axis."""
    w, h = size
    left, right, top, bottom = 56, 12, 14, 30
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    vals = [s for s in sigmas if math.isfinite(s) and s > 0]  # finite, positive
    draw.text((left, 0), "noise level (sigma) per step, log scale", fill="black", font=font(11))
    draw.rectangle((left, top, w - right, h - bottom), outline="black")
    if len(vals) < 1:
        return img
    lo, hi = np.log10(min(vals)), np.log10(max(vals))
    hi = hi if hi > lo else lo + 1
    n = len(sigmas)

    def xy(i: int, s: float) -> tuple[float, float]:
        x = left + (w - left - right) * (i / max(n - 1, 1))
        y = h - bottom - (h - top - bottom) * ((np.log10(max(s, 10 ** lo)) - lo) / (hi - lo))
        return x, y

    points = [xy(i, s) for i, s in enumerate(sigmas) if math.isfinite(s) and s > 0]
    if len(points) > 1:
        draw.line(points, fill=(33, 102, 172), width=2)
    for p in points:
        draw.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=(33, 102, 172))
    draw.text((4, top), f"{10 ** hi:.3g}", fill="black", font=font(10))
    draw.text((4, h - bottom - 10), f"{10 ** lo:.3g}", fill="black", font=font(10))
    draw.text((left, h - bottom + 4), "step 1", fill="black", font=font(10))
    draw.text((w - right - 50, h - bottom + 4), f"step {n}", fill="black", font=font(10))
    return img
