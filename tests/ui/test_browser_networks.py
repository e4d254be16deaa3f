"""The extra-networks panel under the txt2img prompt in a real browser: a Lora card inserts its tag with its
trigger word, a Textual Inversion card its word, a Checkpoints card loads it, and the status line says so."""
from __future__ import annotations

import pytest
import torch

from tests.fixtures.network_files import write_embedding_pt
from tests.ui.conftest import AppServer, chromium_or_skip, make_app_dir, screenshot, wait_model_loaded
from tests.ui.helpers import dropdown_value, text_value, type_into, wait_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_files):
    """The usual test app (LoRA paperCut-v2 with kohya tags and a preview), plus an embedding."""
    chromium_or_skip()
    root = make_app_dir(tmp_path_factory.mktemp("app-networks"), tiny_files)
    (root / "embeddings").mkdir()
    write_embedding_pt(root / "embeddings" / "lsword.pt", torch.randn(1, 64))  # fits the tiny SD1 text encoder
    server = AppServer(root)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_extra_network_cards_insert_lora_with_trigger_word_and_embedding(page):
    type_into(page, "txt2img_prompt", "a paper bird")
    page.locator("#txt2img_extra_networks").get_by_text("Extra networks", exact=False).first.click()
    page.locator("#txt2img_extra_networks").get_by_role("tab", name="Lora", exact=True).click()
    card = page.locator('#txt2img_lora_cards .ls-card[data-key="paperCut-v2"]')
    card.wait_for(state="visible")
    # its preview file, as a thumbnail; the other LoRA has none: a placeholder with its initials
    assert card.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert page.locator('#txt2img_lora_cards .ls-card[data-key="detail_tweaker"] .ls-card-ph').inner_text() == "DT"
    card.click()
    wait_text(page, "txt2img_extra_status", "Inserted <lora:paperCut-v2:1> papercut")
    assert text_value(page, "txt2img_prompt") == "a paper bird <lora:paperCut-v2:1> papercut"
    card.hover()
    screenshot(page, "extra_networks_lora")

    page.locator("#txt2img_extra_networks").get_by_role("tab", name="Textual Inversion", exact=True).click()
    page.locator('#txt2img_textual_inversion_cards .ls-card[data-key="lsword"]').click()
    wait_text(page, "txt2img_extra_status", "Inserted lsword into the txt2img prompt")
    assert text_value(page, "txt2img_prompt") == "a paper bird <lora:paperCut-v2:1> papercut lsword"
    screenshot(page, "extra_networks")

    # a checkpoint card loads that checkpoint as the header's dropdown does
    page.locator("#txt2img_extra_networks").get_by_role("tab", name="Checkpoints", exact=True).click()
    active = dropdown_value(page, "checkpoint_dropdown")
    keys = page.locator("#txt2img_checkpoints_cards .ls-card").evaluate_all("els => els.map(e => e.dataset.key)")
    other = next(k for k in keys if k != active and not k.startswith("zz-broken"))
    page.locator(f'#txt2img_checkpoints_cards .ls-card[data-key="{other}"]').click()
    wait_text(page, "txt2img_extra_status", "Loaded checkpoint", timeout=60_000)
    wait_model_loaded(page)
    assert dropdown_value(page, "checkpoint_dropdown") == other
