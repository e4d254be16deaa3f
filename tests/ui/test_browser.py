"""The web UI in a real browser, driven like a person would. One app server for the module (tiny models, CPU)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui.conftest import screenshot, wait_model_loaded
from tests.ui.helpers import (choose, dropdown_value, gallery_count, number_value, open_tab, paint_stroke, set_number,
                              text_value, type_into, wait_status, wait_text)
from webui.engine.image_files import read_infotext, save_image_with_infotext
from webui.engine.infotext import parse_infotext

pytestmark = pytest.mark.browser


def saved_with_seed(app, mode: str, seed: int) -> Path:
    found = sorted((Path(app.data_dir) / "outputs").glob(f"{mode}-images/*/*-{seed}.png"))
    assert found, f"no {mode} image with seed {seed} saved"
    return found[-1]


def set_seed(page, mode: str, seed: int) -> None:
    box = page.locator(f"#{mode}_seed input").first
    box.fill(str(seed))
    box.press("Tab")


def generate_txt2img(page, prompt: str, seed: int, steps: int = 4, keyboard: bool = False) -> str:
    type_into(page, "txt2img_prompt", prompt)
    set_number(page, "txt2img_steps", steps)
    set_seed(page, "txt2img", seed)
    if keyboard:  # Ctrl+Enter in the prompt box, as in A1111
        page.locator("#txt2img_prompt textarea").press("Control+Enter")
    else:
        page.locator("#txt2img_generate").click()
    return wait_status(page, "txt2img", r"\d+ images? in")


def wait_counter(page, elem_id: str, pattern: str) -> None:
    page.wait_for_function("([sel, pat]) => new RegExp(pat).test(document.querySelector(sel).innerText.trim())",
                           arg=[f"#{elem_id} .ls-count", pattern])


def test_token_counter_changes_as_you_type(page):
    counter = page.locator("#txt2img_prompt_tokens .ls-count")
    assert counter.inner_text().strip() == "0/75"
    type_into(page, "txt2img_prompt", "a cat")
    wait_counter(page, "txt2img_prompt_tokens", "^2/75$")
    assert "ls-over" not in counter.get_attribute("class")
    box = page.locator("#txt2img_prompt textarea")
    box.type(", sitting on a red chair" * 15, delay=0)
    wait_counter(page, "txt2img_prompt_tokens", "/150$")
    count = int(counter.inner_text().split("/")[0])
    assert 75 < count <= 150
    assert "ls-over" in counter.get_attribute("class")  # highlighted: the prompt is split into two chunks
    type_into(page, "txt2img_neg_prompt", "blurry, low quality")
    wait_counter(page, "txt2img_neg_prompt_tokens", "^4/75$")


def test_txt2img_generates_and_saves_matching_infotext(page, app):
    type_into(page, "txt2img_prompt", "a red fox in (deep snow:1.2)")
    type_into(page, "txt2img_neg_prompt", "blurry")
    choose(page, "txt2img_sampler", "Euler")
    set_number(page, "txt2img_steps", 6)
    set_number(page, "txt2img_cfg_scale", 5.5)
    set_number(page, "txt2img_width", 128)
    set_number(page, "txt2img_height", 64)
    set_seed(page, "txt2img", 1234)
    page.locator("#txt2img_generate").click()
    status = wait_status(page, "txt2img", r"\d+ images? in")
    assert "saved in outputs" in status
    page.wait_for_selector("#txt2img_gallery img")
    assert gallery_count(page, "txt2img_gallery") == 1
    shown = text_value(page, "txt2img_infotext")
    screenshot(page, "txt2img")

    path = saved_with_seed(app, "txt2img", 1234)
    info = read_infotext(path)
    assert info == shown
    p = parse_infotext(info)
    assert p["Prompt"] == "a red fox in (deep snow:1.2)"
    assert p["Negative prompt"] == "blurry"
    assert p["Steps"] == "6" and p["Sampler"] == "Euler" and p["CFG scale"] == "5.5" and p["Seed"] == "1234"
    assert (p["Size-1"], p["Size-2"]) == ("128", "64")
    # the image the gallery serves is the saved PNG, metadata included (not Gradio's default WebP)
    src = page.locator("#txt2img_gallery img").first.get_attribute("src")
    assert src.endswith(".png")
    body = page.request.get(src).body()
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and b"parameters" in body


def test_send_to_img2img_and_run(page, app):
    generate_txt2img(page, "a lighthouse at dusk", seed=2001, steps=4)
    page.locator("#txt2img_send_to_img2img").click()
    page.wait_for_function("() => document.querySelector('#img2img_prompt textarea')?.value === 'a lighthouse at dusk'")
    assert number_value(page, "img2img_steps") == "4"
    page.wait_for_selector("#img2img_image canvas, #img2img_image img", state="attached")
    set_number(page, "img2img_denoising_strength", 0.5)
    set_seed(page, "img2img", 2002)
    time.sleep(1.0)  # the editor finishes drawing the background before its value is read
    screenshot(page, "img2img")
    page.locator("#img2img_generate").click()
    wait_status(page, "img2img", r"\d+ images? in")
    p = parse_infotext(read_infotext(saved_with_seed(app, "img2img", 2002)))
    assert p["Prompt"] == "a lighthouse at dusk"
    assert p["Denoising strength"] == "0.5"
    assert (p["Size-1"], p["Size-2"]) == ("64", "64")


def test_img2img_inpaint_mask_drawn_in_editor(page, app):
    """Draw a stroke in the middle of the image: only there is the image repainted."""
    import numpy as np
    from PIL import Image

    generate_txt2img(page, "a pond", seed=8888, steps=3)
    page.locator("#txt2img_send_to_img2img").click()
    paint_stroke(page)
    screenshot(page, "img2img-inpaint")
    set_seed(page, "img2img", 8889)
    page.locator("#img2img_generate").click()
    wait_status(page, "img2img", r"1 image in")
    before = np.asarray(Image.open(saved_with_seed(app, "txt2img", 8888)).convert("RGB")).astype(int)
    after = np.asarray(Image.open(saved_with_seed(app, "img2img", 8889)).convert("RGB")).astype(int)
    diff = np.abs(before - after).sum(-1)
    assert diff[:3, :3].max() == 0 and diff[-3:, -3:].max() == 0  # corners: outside the stroke, unchanged
    assert diff[28:36, 28:36].mean() > 5  # the middle was repainted


def test_png_info_reads_file_and_fills_txt2img(page, tmp_path):
    from PIL import Image

    text = ("a castle on a hill\nNegative prompt: fog, people\nSteps: 13, Sampler: DPM++ 2M, Schedule type: Karras, "
            "CFG scale: 5.5, Seed: 4242, Size: 128x64, Model hash: 0123456789, Model: other, "
            "Variation seed: 77, Variation seed strength: 0.3, Clip skip: 2, Version: v1.10.1")
    src = save_image_with_infotext(Image.new("RGB", (128, 64), (90, 120, 200)), tmp_path / "castle.png", text)
    open_tab(page, "PNG Info")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(src))
    page.wait_for_function("() => /castle on a hill/.test(document.querySelector('#pnginfo_text textarea')?.value)")
    wait_text(page, "pnginfo_table", "DPM++ 2M")
    screenshot(page, "pnginfo")
    page.locator("#pnginfo_send_txt2img").click()
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea')?.value === 'a castle on a hill'")
    assert text_value(page, "txt2img_neg_prompt") == "fog, people"
    assert number_value(page, "txt2img_steps") == "13"
    assert dropdown_value(page, "txt2img_sampler") == "DPM++ 2M"
    assert dropdown_value(page, "txt2img_scheduler") == "Karras"
    assert float(number_value(page, "txt2img_cfg_scale")) == 5.5
    assert text_value(page, "txt2img_seed") == "4242"
    assert (number_value(page, "txt2img_width"), number_value(page, "txt2img_height")) == ("128", "64")
    assert number_value(page, "txt2img_clip_skip") == "2"
    assert text_value(page, "txt2img_subseed") == "77"
    assert float(number_value(page, "txt2img_subseed_strength")) == 0.3


def test_switch_checkpoint_from_dropdown(page, app):
    before = dropdown_value(page, "checkpoint_dropdown")
    target = "tiny-sd1.safetensors" if not before.startswith("tiny-sd1.safetensors") else "tiny-sd1-b.safetensors"
    choose(page, "checkpoint_dropdown", target + " [", prefix=True)
    page.wait_for_function(
        "(t) => document.querySelector('#checkpoint_dropdown input').value.startsWith(t)"
        " && /native/.test(document.querySelector('#model_status').innerText)", arg=target, timeout=60_000)
    generate_txt2img(page, "after the switch", seed=3003, steps=3, keyboard=True)
    p = parse_infotext(read_infotext(saved_with_seed(app, "txt2img", 3003)))
    assert p["Model"] == Path(target).stem
    # and back, so later tests see the usual default
    choose(page, "checkpoint_dropdown", before)
    page.wait_for_function("(t) => document.querySelector('#checkpoint_dropdown input').value === t", arg=before,
                           timeout=60_000)


def test_interrupt_long_job_keeps_finished_images(page, app):
    type_into(page, "txt2img_prompt", "a long job")
    set_number(page, "txt2img_steps", 150)
    set_number(page, "txt2img_batch_count", 4)
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    set_seed(page, "txt2img", 5000)
    page.locator("#txt2img_generate").click()
    wait_status(page, "txt2img", r"Batch 2/4", timeout=60_000)
    screenshot(page, "txt2img-progress")
    page.locator("#txt2img_interrupt").click()
    status = wait_status(page, "txt2img", r"Interrupted: kept", timeout=60_000)
    assert "kept 2 images (1 as far as it got)" in status  # the finished one and, as A1111, the one in progress
    assert gallery_count(page, "txt2img_gallery") >= 2
    assert saved_with_seed(app, "txt2img", 5000).exists() and saved_with_seed(app, "txt2img", 5001).exists()
    assert not list((Path(app.data_dir) / "outputs").glob("txt2img-images/*/*-5003.png"))


def test_broken_checkpoint_keeps_previous_model(page):
    before = dropdown_value(page, "checkpoint_dropdown")
    choose(page, "checkpoint_dropdown", "zz-broken.safetensors", prefix=True)
    wait_text(page, "header_message", "Cannot load checkpoint zz-broken.safetensors", timeout=60_000)
    page.wait_for_function("(t) => document.querySelector('#checkpoint_dropdown input').value === t", arg=before)
    assert "Still using " + before in page.locator("#header_message").inner_text()
    wait_model_loaded(page)
    screenshot(page, "checkpoint-error")
    generate_txt2img(page, "still works", seed=3100, steps=2)


def test_skip_drops_the_current_batch_only(page):
    type_into(page, "txt2img_prompt", "skip one")
    set_number(page, "txt2img_steps", 150)
    set_number(page, "txt2img_batch_count", 3)
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    set_seed(page, "txt2img", 5100)
    page.locator("#txt2img_generate").click()
    wait_status(page, "txt2img", r"Step [1-9]\d*/150 · Batch 1/3", timeout=60_000)
    page.locator("#txt2img_skip").click()
    status = wait_status(page, "txt2img", r"images? in", timeout=60_000)
    assert "2 images in" in status and "skipped 1" in status
    assert gallery_count(page, "txt2img_gallery") == 3  # the batch's grid first, then the two images


def test_lora_card_click_inserts_tag(page):
    type_into(page, "txt2img_prompt", "a paper bird")
    open_tab(page, "LoRA")
    page.wait_for_selector("#lora_gallery img")
    assert page.locator("#lora_gallery .caption-label", has_text="paperCut-v2 · SD 1.x").count() == 1
    assert page.locator("#lora_gallery .caption-label", has_text="detail_tweaker · SDXL").count() == 1
    page.locator("#lora_gallery button", has_text="paperCut-v2").first.click()
    wait_text(page, "lora_details", "papercut")
    screenshot(page, "lora")
    open_tab(page, "txt2img")
    assert text_value(page, "txt2img_prompt") == "a paper bird <lora:paperCut-v2:1>"


def test_styles_create_and_apply(page):
    open_tab(page, "Prompts")
    wait_text(page, "styles_table", "Cinematic")
    type_into(page, "styles_name", "Watercolor")
    type_into(page, "styles_prompt", "watercolor painting, soft edges")
    type_into(page, "styles_negative", "photo")
    page.locator("#styles_save").click()
    wait_text(page, "styles_message", "Created style")
    wait_text(page, "styles_table", "Watercolor")
    screenshot(page, "prompts")
    open_tab(page, "txt2img")
    type_into(page, "txt2img_prompt", "a harbour")
    type_into(page, "txt2img_neg_prompt", "")
    choose(page, "txt2img_styles", "Watercolor")
    page.locator("#txt2img_apply_styles").click()
    page.wait_for_function(
        "() => document.querySelector('#txt2img_prompt textarea').value"
        " === 'a harbour, watercolor painting, soft edges'")
    assert text_value(page, "txt2img_neg_prompt") == "photo"


def test_wildcards_browse_edit_preview(page, app):
    open_tab(page, "Wildcards")
    page.locator("#wildcards_files label", has_text="animals").click()
    page.wait_for_function("() => /fox/.test(document.querySelector('#wildcards_content textarea').value)")
    type_into(page, "wildcards_new_name", "colors")
    page.locator("#wildcards_create").click()
    wait_text(page, "wildcards_message", "Created __colors__")
    type_into(page, "wildcards_content", "red\ngreen\nblue")
    page.locator("#wildcards_save").click()
    wait_text(page, "wildcards_message", "Saved __colors__")
    assert (Path(app.data_dir) / "models" / "wildcards" / "colors.txt").read_text().split() == ["red", "green", "blue"]
    type_into(page, "wildcards_template", "a __colors__ __animals__")
    page.locator("#wildcards_preview").click()
    page.wait_for_function("() => /^1: a (red|green|blue) (cat|dog|fox|owl)/.test("
                           "document.querySelector('#wildcards_preview_out textarea').value)")
    screenshot(page, "wildcards")


def test_models_history_settings_tabs(page, app):
    generate_txt2img(page, "for the history", seed=7007, steps=2)
    open_tab(page, "Models")
    wait_text(page, "models_table", "tiny-sd1.safetensors")
    wait_text(page, "models_table", "active")
    assert page.locator("#models_table").inner_text().count("SD 1.x") >= 2
    screenshot(page, "models")
    open_tab(page, "History")
    page.wait_for_selector("#history_gallery img")
    page.locator("#history_gallery button.thumbnail-item").first.click()
    page.wait_for_function("() => /Steps: /.test(document.querySelector('#history_infotext textarea').value)")
    assert "for the history" in text_value(page, "history_infotext")  # newest first
    screenshot(page, "history")
    open_tab(page, "Settings")
    set_number(page, "settings_steps", 9)
    page.locator("#settings_save").click()
    wait_text(page, "settings_message", "Saved to")
    assert "default_steps: 9" in (Path(app.data_dir) / "config.yaml").read_text()
    screenshot(page, "settings")


def test_extensions_tab_and_extension_tab(page):
    open_tab(page, "Greeter")
    wait_text(page, "greeter_text", "hello from the greeter extension")
    open_tab(page, "Extensions")
    wait_text(page, "extensions_table", "greeter")
    choose(page, "extensions_pick", "greeter")
    wait_text(page, "extensions_settings", "Greeting shown in the tab")
    assert page.locator("#extensions_enabled input").is_checked()
    screenshot(page, "extensions")


def test_queue_position_and_full_message(page, app):
    """The app dir sets queue_size 2. API jobs share the queue with the page: while one runs and two wait, Generate
    says the queue is full; with one waiting, the page shows its position and then runs. The filler jobs are long
    and the test waits on /progress for the queue to be in the state it needs, then interrupts them: no timing
    guess, however slow the machine."""
    import json
    import threading
    import urllib.request

    type_into(page, "txt2img_prompt", "one more")
    set_number(page, "txt2img_steps", 3)
    set_number(page, "txt2img_batch_count", 1)
    set_seed(page, "txt2img", 6006)
    body = json.dumps({"prompt": "filler", "steps": 150, "n_iter": 60, "width": 64, "height": 64}).encode()

    def post(path, data=b"{}"):
        req = urllib.request.Request(app.url + path, data=data, headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req, timeout=300).read()

    def call():
        try:
            post("/sdapi/v1/txt2img", body)
        except Exception:  # noqa: BLE001 - an interrupted or refused filler is fine
            pass

    def state():
        progress = json.loads(urllib.request.urlopen(app.url + "/sdapi/v1/progress", timeout=10).read())
        return progress["state"]

    def wait_until(check, timeout=60):
        end = time.time() + timeout
        while not check(state()):
            assert time.time() < end, json.dumps(state())
            time.sleep(0.2)

    def api_jobs(n):
        threads = [threading.Thread(target=call, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        return threads

    def interrupt_fillers(threads):
        while any(t.is_alive() for t in threads):
            post("/sdapi/v1/interrupt")
            time.sleep(0.3)

    # one running, two waiting: full. The first has started before the others are sent, so the queue reaches that
    # state the same way on any machine
    threads = api_jobs(1)
    wait_until(lambda s: s["job"] and s["queued"] == 0)
    threads += api_jobs(2)
    wait_until(lambda s: s["job"] and s["queued"] == 2)
    page.locator("#txt2img_generate").click()
    status = wait_status(page, "txt2img", r"queue is full", timeout=30_000)
    assert "try again later" in status
    screenshot(page, "txt2img-queue-full")
    interrupt_fillers(threads)
    threads = api_jobs(1)
    wait_until(lambda s: s["job"] and s["queued"] == 0)
    page.locator("#txt2img_generate").click()
    wait_status(page, "txt2img", r"Waiting in queue: position 1", timeout=30_000)
    interrupt_fillers(threads)
    wait_status(page, "txt2img", r"1 image in", timeout=60_000)
    assert saved_with_seed(app, "txt2img", 6006).exists()


def test_auth_asks_for_login_and_api_refuses(browser, tmp_path_factory, tiny_files):
    import base64
    import urllib.error
    import urllib.request

    from tests.ui.conftest import AppServer, make_app_dir

    server = AppServer(make_app_dir(tmp_path_factory.mktemp("auth"), tiny_files),
                       ["--api", "--auth", "alice:wonder1,bob:builder2"])
    try:
        server.wait_ready()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/sdapi/v1/sd-models", timeout=10)
        assert err.value.code == 401
        good = urllib.request.Request(server.url + "/sdapi/v1/sd-models", headers={
            "Authorization": "Basic " + base64.b64encode(b"bob:builder2").decode()})
        with urllib.request.urlopen(good, timeout=10) as r:
            assert r.status == 200
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pg = context.new_page()
        pg.goto(server.url)
        pg.wait_for_selector("input[type=password]", timeout=60_000)
        assert pg.locator("#txt2img_generate").count() == 0
        screenshot(pg, "login")
        pg.locator("input[type=text], input:not([type])").first.fill("alice")
        pg.locator("input[type=password]").fill("wrong")
        pg.locator("button", has_text="Login").click()
        pg.wait_for_selector("text=Incorrect", timeout=15_000)
        pg.locator("input[type=text], input:not([type])").first.fill("alice")
        pg.locator("input[type=password]").fill("wonder1")
        pg.locator("button", has_text="Login").click()
        pg.wait_for_selector("#txt2img_generate", timeout=60_000)
        wait_model_loaded(pg)
        context.close()
    finally:
        server.stop()
