"""Image grids as A1111 draws them: cells in rows and columns, optionally with labels above the columns and left of
the rows (X/Y/Z plot, prompt matrix), for a batch's grid and the scripts' grids.

Labels use the scalable TrueType font that ships inside Pillow (`ImageFont.load_default(size=...)`, Pillow >= 10.1
with FreeType): nothing is downloaded and no system font is needed.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
ACTIVE = (0, 0, 0)  # A1111's grid_text_active_color
INACTIVE = (153, 153, 153)  # grid_text_inactive_color: a prompt matrix part that is off (struck through)


@dataclass(frozen=True)
class Label:
    text: str
    active: bool = True


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's own scalable font at `size` px (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # an old Pillow, or one built without FreeType
        return ImageFont.load_default()


def prepend_grid(result, image: Image.Image, infotext: str, path=None) -> None:
    """`image` put after the grids already first among a GenerationResult's images, with its first image's seed
    and prompts (so that every list stays aligned with `images`); `path` where it was saved, if it was."""
    at = result.index_of_first_image
    result.images.insert(at, image)
    result.infotexts.insert(at, infotext)
    for name in ("seeds", "subseeds", "prompts", "negative_prompts"):
        values = getattr(result, name)
        if values:
            values.insert(at, values[min(at, len(values) - 1)])
    if path is not None:
        result.paths.insert(at, path)
    result.index_of_first_image = at + 1


def grid_rows(count: int, rows: int | None = None) -> int:
    """A1111's layout with its default n_rows (-1): about as many rows as columns."""
    if rows is None or rows <= 0:
        rows = round(math.sqrt(count))
    return max(1, min(rows, count))


def image_grid(images: list[Image.Image], rows: int | None = None) -> Image.Image:
    """The images in rows (filled row by row), each in a cell as big as the largest image."""
    rows = grid_rows(len(images), rows)
    cols = math.ceil(len(images) / rows)
    return labelled_grid(images, cols, rows)


def labelled_grid(images: list[Image.Image | None], cols: int, rows: int,
                  col_labels: list[list[Label]] | None = None, row_labels: list[list[Label]] | None = None,
                  margin: int = 0) -> Image.Image:
    """`images` (row by row; None leaves a cell empty) with each column's labels above it and each row's left of
    it, `margin` px between cells."""
    present = [im for im in images if im is not None]
    width = max((im.width for im in present), default=64)
    height = max((im.height for im in present), default=64)
    layout = _Layout(width, height, col_labels or [[] for _ in range(cols)], row_labels or [[] for _ in range(rows)])
    out = Image.new("RGB", (layout.left + cols * width + margin * (cols - 1),
                            layout.top + rows * height + margin * (rows - 1)), BACKGROUND)
    for i, image in enumerate(images[:cols * rows]):
        if image is not None:
            col, row = i % cols, i // cols
            out.paste(image.convert("RGB"), (layout.left + col * (width + margin), layout.top + row * (height + margin)))
    draw = ImageDraw.Draw(out)
    for col, lines in enumerate(layout.cols):
        x = layout.left + col * (width + margin) + width / 2
        _draw_lines(draw, x, (layout.top - _height(lines, layout)) / 2, lines, layout)
    for row, lines in enumerate(layout.rows):
        y = layout.top + row * (height + margin) + height / 2 - _height(lines, layout) / 2
        _draw_lines(draw, layout.left / 2, y, lines, layout)
    return out


class _Layout:
    """Font size, wrapped label lines and the sizes of the label bands for cells of width x height."""

    def __init__(self, width: int, height: int, cols: list[list[Label]], rows: list[list[Label]]):
        self.size = max(12, (width + height) // 25)
        self.spacing = self.size // 2
        self.font = font(self.size)
        has_rows = any(label.text for lines in rows for label in lines)
        widest_word = max((self.measure(word)[0] for lines in rows for label in lines
                           for word in label.text.split()), default=0)
        self.left = max(width * 3 // 4, min(widest_word + self.spacing * 2, width * 2)) if has_rows else 0
        self.cols = [self.wrap(lines, width - self.spacing) for lines in cols]
        self.rows = [self.wrap(lines, self.left - self.spacing) for lines in rows]
        tallest = max((_height(lines, self) for lines in self.cols), default=0)
        self.top = tallest + self.spacing * 2 if tallest else 0

    def measure(self, text: str) -> tuple[int, int]:
        box = self.font.getbbox(text or " ")
        return box[2] - box[0], self.size

    def wrap(self, lines: list[Label], allowed: int) -> list[Label]:
        out: list[Label] = []
        for label in lines:
            current = ""
            for word in label.text.split():
                candidate = f"{current} {word}".strip()
                if current and self.measure(candidate)[0] > allowed:
                    out.append(Label(current, label.active))
                    current = word
                else:
                    current = candidate
            if current:
                out.append(Label(current, label.active))
        return out


def _height(lines: list[Label], layout: _Layout) -> int:
    return max(0, len(lines) * (layout.size + layout.spacing) - layout.spacing)


def _draw_lines(draw: ImageDraw.ImageDraw, center_x: float, top: float, lines: list[Label], layout: _Layout) -> None:
    y = top
    for label in lines:
        width = layout.measure(label.text)[0]
        x = center_x - width / 2
        draw.text((x, y), label.text, font=layout.font, fill=ACTIVE if label.active else INACTIVE)
        if not label.active:
            mid = y + layout.size / 2
            draw.line((x, mid, x + width, mid), fill=INACTIVE, width=max(1, layout.size // 8))
        y += layout.size + layout.spacing
