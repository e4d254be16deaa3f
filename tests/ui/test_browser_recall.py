"""↙ in a real browser: an infotext pasted into the prompt box fills the fields, names what it could not restore and
switches the checkpoint through the header."""
from __future__ import annotations

import pytest

from tests.ui.conftest import screenshot
from tests.ui.helpers import dropdown_value, number_value, text_value, wait_status

pytestmark = pytest.mark.browser


def test_paste_button_reads_the_prompt_box(page):
    before = dropdown_value(page, "checkpoint_dropdown")
    target = "tiny-sd1-b" if before.startswith("tiny-sd1.safetensors") else "tiny-sd1"
    text = ("a red circle\nNegative prompt: blue\nSteps: 7, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 321, "
            f"Size: 96x64, Model: {target}, Variation seed: 5, Variation seed strength: 0.25, Tiling: True, "
            "ADetailer model: face_yolov8n.pt, Version: v1.10.1")
    page.locator("#txt2img_prompt textarea").fill(text)
    page.locator("#paste").click()
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea')?.value === 'a red circle'")
    status = wait_status(page, "txt2img", r"Not restored: ADetailer model \(no such setting here\); "
                                          r"Version \(informational\)")
    assert f"Switching to {target}.safetensors [" in status
    assert text_value(page, "txt2img_neg_prompt") == "blue"
    assert (dropdown_value(page, "txt2img_sampler"), dropdown_value(page, "txt2img_scheduler")) == ("DPM++ 2M",
                                                                                                    "Karras")
    assert (number_value(page, "txt2img_steps"), text_value(page, "txt2img_seed")) == ("7", "321")
    assert (number_value(page, "txt2img_width"), number_value(page, "txt2img_height")) == ("96", "64")
    assert float(number_value(page, "txt2img_cfg_scale")) == 6.5
    assert text_value(page, "txt2img_subseed") == "5"
    assert float(number_value(page, "txt2img_subseed_strength")) == 0.25
    assert page.locator("#txt2img_tiling input").is_checked()
    page.wait_for_function("(t) => document.querySelector('#checkpoint_dropdown input')?.value.startsWith(t)",
                           arg=f"{target}.safetensors [", timeout=60_000)
    page.wait_for_function("() => /native/.test(document.querySelector('#model_status')?.innerText)")
    assert (number_value(page, "txt2img_width"), number_value(page, "txt2img_height")) == ("96", "64")
    screenshot(page, "paste-parameters")
