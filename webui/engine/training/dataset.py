"""Training images: read from a folder (captions in a `.txt` beside each image, as kohya reads them) or given as
images, then resized and centre-cropped to the model's size, or to the nearest aspect-ratio bucket."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from webui.engine.training.request import (
    TrainingError,
    TrainingNotFound,
    TrainingRequest,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")
MAX_IMAGES = 10_000


@dataclass
class TrainingImage:
    image: Image.Image  # RGB, at its bucket's size
    caption: str  # the .txt beside it (or the given caption), "" when none
    source: str  # file name (for messages and the metadata's tag counts)


def read_folder(folder: Path, caption_extension: str = ".txt") -> list[tuple[Image.Image, str, str]]:
    if not folder.is_dir():
        raise TrainingNotFound(f"Image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if len(files) > MAX_IMAGES:
        raise TrainingError(f"{folder} holds {len(files)} images; at most {MAX_IMAGES} are used for training")
    out = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                image = ImageOps.exif_transpose(im).convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise TrainingError(f"Cannot read training image {path.name}: {exc}") from None
        out.append((image, read_caption(path, caption_extension), path.name))
    return out


def read_caption(image_path: Path, extension: str = ".txt") -> str:
    """kohya's caption file: same name, `extension` (".txt" or ".caption"); one line of text or tags."""
    for ext in dict.fromkeys((extension, ".txt", ".caption")):
        path = image_path.with_suffix(ext)
        if path.is_file():
            try:
                return " ".join(path.read_text(encoding="utf-8").split())
            except (OSError, UnicodeDecodeError) as exc:
                raise TrainingError(f"Cannot read caption {path.name}: {exc}") from None
    return ""


def gather(request: TrainingRequest) -> list[tuple[Image.Image, str, str]]:
    """The request's images with their captions and names; TrainingError for none or unreadable ones."""
    items: list[tuple[Image.Image, str, str]] = []
    if request.image_dir is not None:
        items += read_folder(request.image_dir, request.caption_extension)
    captions = list(request.captions or [])
    for i, image in enumerate(request.images):
        if not isinstance(image, Image.Image):
            raise TrainingError(f"Training image {i + 1} is not an image")
        items.append((ImageOps.exif_transpose(image).convert("RGB"), captions[i].strip() if i < len(captions) else "",
                      getattr(image, "filename", "") or f"image-{i + 1}"))
    if not items:
        where = f" in {request.image_dir}" if request.image_dir is not None else ""
        raise TrainingError(f"No training images{where} (need at least 1: {', '.join(IMAGE_SUFFIXES)})")
    return items


def bucket_sizes(side: int, step: int = 64, max_ratio: float = 2.0) -> list[tuple[int, int]]:
    """(width, height) pairs of about side*side pixels, sides multiples of `step`, aspect ratios up to 2:1."""
    step = min(step, side)
    sizes = {(side, side)}
    w = side
    while True:
        w += step
        h = (side * side // w) // step * step
        if h < step or w / h > max_ratio:
            break
        sizes |= {(w, h), (h, w)}
    return sorted(sizes)


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to cover `size`, then crop the centre (A1111's 'crop and resize')."""
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def prepare(items, side: int, buckets: bool, multiple: int = 8) -> list[TrainingImage]:
    side = max(multiple, side // multiple * multiple)
    sizes = bucket_sizes(side, step=max(multiple, side // 8 // multiple * multiple)) if buckets else [(side, side)]
    out = []
    for image, caption, source in items:
        ratio = image.width / image.height
        size = min(sizes, key=lambda s: abs(math.log(s[0] / s[1]) - math.log(ratio)))
        out.append(TrainingImage(fit(image, size), caption, source))
    return out
