"""Small helpers shared by the API tests."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def b64png(img: Image.Image, prefix: bool = False) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    raw = base64.b64encode(buf.getvalue()).decode()
    return "data:image/png;base64," + raw if prefix else raw


def decode(b64: str) -> Image.Image:
    assert not b64.startswith("data:"), "A1111 sends raw base64, no data: prefix"
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def infotext_of(img: Image.Image) -> dict:
    text = read_infotext(img)
    assert text, "the PNG carries no infotext"
    return parse_infotext(text)


def info_of(response_json: dict) -> dict:
    assert isinstance(response_json["info"], str), "info is a JSON string in A1111"
    return json.loads(response_json["info"])


def pattern_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A picture with structure: a red square on a noisy blue-green field."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((size, size, 3), np.uint8)
    arr[..., 1] = 120
    arr[..., 2] = rng.integers(100, 200, (size, size), dtype=np.uint8)
    q = size // 4
    arr[q:3 * q, q:3 * q] = (220, 40, 40)
    return Image.fromarray(arr)


def square_mask(size: int = 64, lo: int = 16, hi: int = 48) -> Image.Image:
    m = Image.new("L", (size, size), 0)
    m.paste(255, (lo, lo, hi, hi))
    return m.convert("RGB")


def saved_pngs(data_dir) -> set:
    return {p for p in (data_dir / "outputs").rglob("*.png")}
