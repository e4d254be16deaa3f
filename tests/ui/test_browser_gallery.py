"""Issue 25 in a real browser: the gallery actions (zip and save downloads, send to inpaint, send to extras), the
⇅ swap of width and height, and a value above a setting's limit refused with a message instead of clamped."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.ui.conftest import screenshot, wait_model_loaded
from tests.ui.helpers import (gallery_count, number_value, paint_stroke, set_number, text_value, type_into,
                              wait_status, wait_text)
from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext

pytestmark = pytest.mark.browser


def saved(app, mode: str, seed: int) -> Path:
    found = sorted((Path(app.data_dir) / "outputs").glob(f"{mode}-images/*/*-{seed}.png"))
    assert found, f"no {mode} image with seed {seed} saved"
    return found[-1]


def generate(page, prompt: str, seed: int, steps: int = 2, count: int = 1) -> str:
    type_into(page, "txt2img_prompt", prompt)
    set_number(page, "txt2img_steps", steps)
    set_number(page, "txt2img_batch_count", count)
    box = page.locator("#txt2img_seed input").first
    box.fill(str(seed))
    box.press("Tab")
    page.locator("#txt2img_generate").click()
    return wait_status(page, "txt2img", r"\d+ images? in")


def test_swap_width_and_height(page, app):
    set_number(page, "txt2img_width", 128)
    set_number(page, "txt2img_height", 64)
    page.locator("#txt2img_res_switch_btn").click()
    page.wait_for_function("() => document.querySelector('#txt2img_width input[type=number]').value === '64'")
    assert number_value(page, "txt2img_height") == "128"
    screenshot(page, "swap-size")
    generate(page, "a tall one", seed=4300)
    p = parse_infotext(read_infotext(saved(app, "txt2img", 4300)))
    assert (p["Size-1"], p["Size-2"]) == ("64", "128")
    assert Image.open(saved(app, "txt2img", 4300)).size == (64, 128)


def test_steps_above_the_limit_are_refused_with_a_message(page, app):
    before = set((Path(app.data_dir) / "outputs").rglob("*.png"))
    type_into(page, "txt2img_prompt", "too many steps")
    set_number(page, "txt2img_steps", 200)  # typed, then Tab: Gradio's slider would clamp this to 150
    assert number_value(page, "txt2img_steps") == "200"
    page.locator("#txt2img_generate").click()
    status = wait_status(page, "txt2img", "max_steps")
    assert "Sampling steps 200 is above the maximum of 150 (setting max_steps" in status
    assert "ls-error" in page.locator("#txt2img_status .ls-status").get_attribute("class")
    assert number_value(page, "txt2img_steps") == "200"  # still what was typed
    screenshot(page, "steps-limit")
    time.sleep(1.0)
    assert set((Path(app.data_dir) / "outputs").rglob("*.png")) == before  # nothing ran
    set_number(page, "txt2img_steps", 150)  # at the limit: fine (150 steps of the tiny model, one image)
    page.locator("#txt2img_generate").click()
    assert "1 image in" in wait_status(page, "txt2img", r"\d+ images? in", timeout=120_000)


def test_zip_and_save_download_the_batch(browser, app, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(app.url)
        page.wait_for_selector("#txt2img_generate", state="visible", timeout=60_000)
        wait_model_loaded(page)
        status = generate(page, "a batch to keep", seed=4400, count=2)
        assert "2 images in" in status and "grid first" in status
        assert gallery_count(page, "txt2img_gallery") == 3  # the grid, then the two images

        page.locator("#save_zip_txt2img").click()
        wait_text(page, "txt2img_status", "Ready to download")
        link = page.locator("#download_files_txt2img a").first
        link.wait_for()
        with page.expect_download() as info:
            link.click()
        path = tmp_path / "batch.zip"
        info.value.save_as(path)
        screenshot(page, "zip-download")
        images = [saved(app, "txt2img", 4400), saved(app, "txt2img", 4401)]
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            assert len(names) == 6 and sum(n.endswith(".png") for n in names) == 3
            assert names[0].startswith("grid-") and names[1] == names[0][:-4] + ".txt"
            for image in images:
                assert zf.read(image.name) == image.read_bytes()  # the saved PNG, its infotext inside
                assert zf.read(image.stem + ".txt").decode() == read_infotext(image)
            grid = Image.open(io.BytesIO(zf.read(names[0])))
            assert grid.size == (128, 64)  # two 64x64 images side by side
            assert "Seed: 4400" in zf.read(names[1]).decode()

        page.locator("#save_txt2img").click()  # the selected image: the grid, shown first
        page.wait_for_function("() => /grid-\\d+\\s*\\.png/.test(document.querySelector('#download_files_txt2img')"
                               "?.innerText || '')")
        with page.expect_download() as info:
            page.locator("#download_files_txt2img a").first.click()
        one = tmp_path / "one.png"
        info.value.save_as(one)
        assert Image.open(one).size == (128, 64) and "Seed: 4400" in read_infotext(one)
    finally:
        context.close()


def test_send_to_inpaint_then_only_the_stroke_is_repainted(page, app):
    generate(page, "a pond at noon", seed=4500, steps=3)
    page.locator("#txt2img_send_to_inpaint").click()
    page.wait_for_function("() => document.querySelector('#img2img_prompt textarea')?.value === 'a pond at noon'")
    wait_text(page, "img2img_status", "Sent to inpaint")
    assert page.locator("#img2img_mask_blur").is_visible()  # the inpaint settings are open
    paint_stroke(page)
    screenshot(page, "send-to-inpaint")
    box = page.locator("#img2img_seed input").first
    box.fill("4501")
    box.press("Tab")
    page.locator("#img2img_generate").click()
    wait_status(page, "img2img", r"1 image in")
    out = saved(app, "img2img", 4501)
    p = parse_infotext(read_infotext(out))
    assert p["Prompt"] == "a pond at noon" and p["Mask blur"] == "4"
    before = np.asarray(Image.open(saved(app, "txt2img", 4500)).convert("RGB")).astype(int)
    after = np.asarray(Image.open(out).convert("RGB")).astype(int)
    diff = np.abs(before - after).sum(-1)
    assert diff[:3, :3].max() == 0 and diff[-3:, -3:].max() == 0  # the background image was kept outside
    assert diff[28:36, 28:36].mean() > 5  # and repainted under the stroke


def test_send_to_extras(page, app):
    generate(page, "for the extras tab", seed=4600)
    page.locator("#txt2img_send_to_extras").click()
    page.wait_for_selector("#extras_image img", state="visible")
    assert page.locator("#extras_source input[value='Single Image']").is_checked()
    page.locator("#extras_generate").click()
    wait_text(page, "extras_message", "1 image(s)")
    out = sorted((Path(app.data_dir) / "outputs").glob("extras-images/*/*.png"))[-1]
    assert Image.open(out).size == (128, 128)  # the 64x64 result, scaled by 2
    assert text_value(page, "txt2img_prompt") == "for the extras tab"
