"""Synthetic "shapes" dataset, drawn on the fly with Pillow.

Every sample is a single flat-coloured shape on a flat background, plus a
caption that describes it, e.g.

    "a small red circle at the top left on a blue background"

Because the dataset is procedural it needs no download, it is infinite and it
is exactly reproducible from a seed.  The same vocabulary (colours, shapes,
positions) is used by the evaluation harness in ``tests/fixtures``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

# Named colours (RGB).  They double as shape and background colours, and
# are far enough apart that a nearest-colour classifier can tell them apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 15),
    "yellow": (245, 225, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "purple": (140, 40, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}

SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")

# 3x3 grid: name -> (column, row); the phrase used in captions.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0), "top": (1, 0), "top right": (2, 0),
    "left": (0, 1), "center": (1, 1), "right": (2, 1),
    "bottom left": (0, 2), "bottom": (1, 2), "bottom right": (2, 2),
}
POSITION_PHRASES: dict[str, str] = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}

# Geometry, as fractions of the image side.
GRID_CENTERS = (0.2, 0.5, 0.8)   # shape centre for column/row 0, 1, 2
RADIUS = {"small": 0.1, "large": 0.17}
JITTER = 0.03


@dataclass
class Sample:
    shape: str
    color: str
    background: str
    size: str
    position: str


def random_sample(rng: random.Random, shapes=SHAPES) -> Sample:
    color = rng.choice(list(COLORS))
    background = rng.choice([c for c in COLORS if c != color])
    return Sample(
        shape=rng.choice(shapes),
        color=color,
        background=background,
        size=rng.choice(SIZES),
        position=rng.choice(list(POSITIONS)),
    )


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float = 0.0):
    """Vertices of a polygon shape inscribed in a circle of radius ``r``."""
    if shape == "square":
        n, start, radii = 4, math.pi / 4, [r * 1.15] * 4
    elif shape == "triangle":
        n, start, radii = 3, -math.pi / 2, [r * 1.25] * 3
    elif shape == "star":
        n, start = 10, -math.pi / 2
        radii = [r * 1.3 if i % 2 == 0 else r * 0.55 for i in range(n)]
    else:
        raise ValueError(shape)
    pts = []
    for i in range(n):
        a = start + angle + 2 * math.pi * i / n
        pts.append((cx + radii[i] * math.cos(a), cy + radii[i] * math.sin(a)))
    return pts


def render(sample: Sample, size: int = 128, rng: random.Random | None = None,
           invert: bool = False) -> Image.Image:
    """Draw ``sample`` as an RGB image of ``size`` x ``size`` pixels.

    Drawn at 4x resolution and downsampled, which gives smooth edges.
    ``invert`` draws the colour negative (used for the LoRA demo).
    """
    rng = rng or random.Random(0)
    ss = 4
    side = size * ss
    img = Image.new("RGB", (side, side), COLORS[sample.background])
    draw = ImageDraw.Draw(img)
    col, row = POSITIONS[sample.position]
    cx = (GRID_CENTERS[col] + rng.uniform(-JITTER, JITTER)) * side
    cy = (GRID_CENTERS[row] + rng.uniform(-JITTER, JITTER)) * side
    r = RADIUS[sample.size] * side * rng.uniform(0.9, 1.1)
    fill = COLORS[sample.color]
    if sample.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(shape_polygon(sample.shape, cx, cy, r), fill=fill)
    img = img.resize((size, size), Image.LANCZOS)
    if invert:
        img = Image.eval(img, lambda v: 255 - v)
    return img


def render_scene(rng: random.Random, size: int = 64, max_shapes: int = 5,
                 invert: bool = False) -> tuple[Image.Image, tuple[int, int, int]]:
    """A busier picture for training the VAE: 1..max_shapes shapes of any
    kind, colour, size and place on one background.  More edges per image
    teach the autoencoder faster than the single-shape captions set.
    Returns the image and its background colour."""
    ss = 4
    side = size * ss
    names = list(COLORS)
    bg = rng.choice(names)
    img = Image.new("RGB", (side, side), COLORS[bg])
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, max_shapes)):
        shape = rng.choice(SHAPES + ("star",))
        fill = COLORS[rng.choice([c for c in names if c != bg])]
        cx, cy = rng.uniform(0.05, 0.95) * side, rng.uniform(0.05, 0.95) * side
        r = rng.uniform(0.06, 0.2) * side
        if shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(shape_polygon(shape, cx, cy, r), fill=fill)
    img = img.resize((size, size), Image.LANCZOS)
    bg_rgb = COLORS[bg]
    if invert:
        img = Image.eval(img, lambda v: 255 - v)
        bg_rgb = tuple(255 - v for v in bg_rgb)
    return img, bg_rgb


def caption(sample: Sample, rng: random.Random | None = None, full: bool = False,
            shape_word: str | None = None, prefix: str = "") -> str:
    """Caption for ``sample``.

    With ``full=False`` some attributes are randomly left out (each with
    probability 0.2), so the model also learns what to do when a prompt does
    not say, e.g., which colour: it then picks one at random, which is what
    makes negative prompts ("red") meaningful.
    """
    rng = rng or random.Random(0)
    keep = (lambda: True) if full else (lambda: rng.random() > 0.2)
    words = ["a"]
    if keep():
        words.append(sample.size)
    if keep():
        words.append(sample.color)
    words.append(shape_word or sample.shape)
    if keep():
        words.append(POSITION_PHRASES[sample.position])
    if keep():
        article = "an" if sample.background[0] in "aeiou" else "a"
        words.append(f"on {article} {sample.background} background")
    # "a orange" -> "an orange"
    if words[1][0] in "aeiou":
        words[0] = "an"
    text = " ".join(words)
    return f"{prefix} {text}".strip() if prefix else text


def full_caption(sample: Sample) -> str:
    return caption(sample, full=True)


if __name__ == "__main__":  # quick look: python -m webui.training.shapes
    rng = random.Random(0)
    grid = Image.new("RGB", (128 * 4, 128 * 4))
    for i in range(16):
        s = random_sample(rng)
        grid.paste(render(s, 128, rng), ((i % 4) * 128, (i // 4) * 128))
        print(full_caption(s))
    grid.save("/tmp/shapes_grid.png")
    print("wrote /tmp/shapes_grid.png")
