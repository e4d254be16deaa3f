"""Playwright helpers that act like a person on the Latent Studio page."""
from __future__ import annotations

import re
import time
from pathlib import Path


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def type_into(page, elem_id: str, text: str) -> None:
    box = textbox(page, elem_id)
    box.click()
    box.fill("")
    box.type(text, delay=5)


def set_number(page, elem_id: str, value) -> None:
    """A slider's or a number field's typed value (the small number box next to a slider)."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.click()
    box.fill(str(value))
    box.press("Tab")


def number_value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").first.input_value()


def text_value(page, elem_id: str) -> str:
    return textbox(page, elem_id).input_value()


def choose(page, elem_id: str, option: str, prefix: bool = False) -> None:
    """Pick an option of a gradio dropdown (the whole text, or its start with prefix=True)."""
    page.locator(f"#{elem_id} input").first.click()
    exact = re.compile(r"^\W*" + re.escape(option) + (r"" if prefix else r"\s*$"))
    page.locator("ul[role=listbox] li").filter(has_text=exact).first.click()


def dropdown_value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label, exact=True).click()
    time.sleep(0.3)


def status_text(page, mode: str) -> str:
    return page.locator(f"#{mode}_status").inner_text()


def wait_status(page, mode: str, pattern: str, timeout: float = 60_000) -> str:
    page.wait_for_function(
        "([sel, pat]) => { const e = document.querySelector(sel); return e && new RegExp(pat).test(e.innerText); }",
        arg=[f"#{mode}_status", pattern], timeout=timeout)
    return status_text(page, mode)


def gallery_count(page, elem_id: str) -> int:
    """Images in a gallery (its thumbnails say "Thumbnail i of N"; in preview mode they appear twice)."""
    thumbs = page.locator(f"#{elem_id} button.thumbnail-item")
    if thumbs.count() == 0:
        return 0
    label = thumbs.first.get_attribute("aria-label") or ""
    return int(label.rsplit(" of ", 1)[1]) if " of " in label else thumbs.count()


def newest_files(folder: Path, pattern: str = "*.png") -> list[Path]:
    return sorted(Path(folder).rglob(pattern), key=lambda p: p.stat().st_mtime_ns, reverse=True)


def wait_text(page, elem_id: str, text: str, timeout: float = 30_000) -> None:
    """Wait until the element's visible text contains `text`."""
    page.wait_for_function("([sel, t]) => { const e = document.querySelector(sel);"
                           " return e && e.innerText.includes(t); }",
                           arg=[f"#{elem_id}", text], timeout=timeout)


def paint_stroke(page, elem_id: str = "img2img_image") -> None:
    """A short horizontal brush stroke across the middle of an image editor's canvas (once its background is drawn)."""
    editor = page.locator(f"#{elem_id}")
    editor.locator("canvas").last.wait_for()
    time.sleep(1.0)  # the editor finishes drawing its background
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").last.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 20, cy)
    page.mouse.down()
    page.mouse.move(cx + 20, cy, steps=8)
    page.mouse.up()
    time.sleep(0.5)
