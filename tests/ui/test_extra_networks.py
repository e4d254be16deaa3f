"""The extra-networks panel under the prompt (checkpoint, textual-inversion and LoRA cards) without a browser: what a
card click puts into the prompt boxes, search and sort, a checkpoint card's switch through the header, and
"Replace preview" (written next to the file, refused while folders are locked)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import gradio as gr
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.fixtures.network_files import write_embedding_pt

SORT = "Name (A-Z)"


@pytest.fixture
def nets(engine, data_dir):
    """Three LoRAs (trigger words from an A1111 .json sidecar, from kohya's ss_tag_frequency, from
    modelspec.trigger_phrase), one with a preview, and one embedding."""
    lora = Path(data_dir) / "models" / "Lora"
    lora.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(lora / "inkStyle.safetensors"),
              metadata={"ss_tag_frequency": json.dumps({"5_ink": {"ink": 2, "brush": 9}})})
    (lora / "inkStyle.json").write_text(json.dumps({"activation text": "ink wash, brush strokes",
                                                    "preferred weight": 0.7, "negative text": "photo",
                                                    "description": "Sumi-e look"}), encoding="utf-8")
    Image.new("RGB", (40, 30), (200, 20, 20)).save(lora / "inkStyle.preview.png")
    save_file({"x": torch.zeros(1)}, str(lora / "paperCut.safetensors"), metadata={
        "ss_base_model_version": "sd_v1",
        "ss_tag_frequency": json.dumps({"10_papercut": {"papercut": 12, "layered paper": 7},
                                        "2_extra": {"origami": 3}})})
    save_file({"x": torch.zeros(1)}, str(lora / "Glow.safetensors"),
              metadata={"modelspec.trigger_phrase": "neon glow"})
    emb = Path(data_dir) / "embeddings"
    emb.mkdir()
    write_embedding_pt(emb / "lsword.pt", torch.randn(2, 32))
    for i, name in enumerate(("paperCut.safetensors", "Glow.safetensors", "inkStyle.safetensors")):
        os.utime(lora / name, (1_700_000_000 + i * 100, 1_700_000_000 + i * 100))  # oldest paperCut, newest ink
    engine.list_loras(refresh=True)
    return Path(data_dir)


def panel_for(engine, mode="txt2img"):
    from webui.ui import UiContext
    from webui.ui.extra_networks import ExtraNetworksPanel

    ctx = UiContext(engine)
    with gr.Blocks():
        panel = ExtraNetworksPanel(ctx, mode).build()
    return panel


def click(panel, kind, key, prompt="", negative="", target="Prompt", action="insert", records=(), selected=0,
          query="", sort=SORT):
    """-> (prompt, negative, status text, pending checkpoint, cards html); gr.skip() values become None."""
    out = panel.click(kind, key, action, prompt, negative, target, list(records), selected, query, sort)
    plain = [None if isinstance(v, dict) and v.get("__type__") == "update" else v for v in out]
    plain[2] = re.sub(r"<[^>]+>", "", plain[2]).replace("&lt;", "<").replace("&gt;", ">")
    return plain


def keys(page_html: str) -> list[str]:
    return re.findall(r'data-key="([^"]*)"', page_html)


def test_lora_card_inserts_tag_and_sidecar_activation_text(engine, nets):
    panel = panel_for(engine)
    prompt, negative, status, pending, _ = click(panel, "lora", "inkStyle", "a crane", "")
    assert prompt == "a crane <lora:inkStyle:0.7> ink wash, brush strokes"  # preferred weight + activation text
    assert negative == "photo"  # A1111's 'negative text'
    assert "Inserted <lora:inkStyle:0.7> ink wash, brush strokes into the txt2img prompt" in status
    assert pending is None
    # a second click removes it again (A1111), whatever weight was typed since
    prompt, negative, status, _, _ = click(panel, "lora", "inkStyle", "a crane <lora:inkStyle:0.4> ink wash, brush "
                                           "strokes, sunset", "photo, blur")
    assert prompt == "a crane, sunset" and negative == "blur" and "Removed <lora:inkStyle:0.4>" in status


def test_lora_card_trigger_words_from_file_metadata(engine, nets):
    panel = panel_for(engine)
    # kohya's ss_tag_frequency: the top tag of each training folder
    prompt, negative, status, _, _ = click(panel, "lora", "paperCut", "")
    assert prompt == "<lora:paperCut:1> papercut, origami" and negative is None
    # modelspec.trigger_phrase
    prompt, *_ = click(panel, "lora", "Glow", "a city,")
    assert prompt == "a city, <lora:Glow:1> neon glow"
    # a LoRA without any: the tag alone, and the status says so
    save_file({"x": torch.zeros(1)}, str(nets / "models" / "Lora" / "bare.safetensors"))
    engine.list_loras(refresh=True)
    prompt, _, status, _, _ = click(panel, "lora", "bare", "x")
    assert prompt == "x <lora:bare:1>" and "no trigger words" in status


def test_embedding_card_inserts_its_word_into_the_focused_box(engine, nets):
    panel = panel_for(engine, "img2img")
    prompt, negative, status, _, _ = click(panel, "textual_inversion", "lsword", "a cat", "blurry",
                                           target="Negative prompt")
    assert prompt is None and negative == "blurry lsword"
    assert "Inserted lsword into the img2img negative prompt" in status
    prompt, negative, *_ = click(panel, "textual_inversion", "lsword", "a cat")
    assert prompt == "a cat lsword"
    prompt, *_ = click(panel, "textual_inversion", "lsword", "lsword, a cat")  # clicked again: removed
    assert prompt == "a cat"
    _, _, status, _, _ = click(panel, "textual_inversion", "nope")
    assert "is gone" in status


def test_search_and_sort(engine, nets):
    panel = panel_for(engine)
    ckpts, tis, loras = panel.render("", SORT)
    assert keys(loras) == ["Glow", "inkStyle", "paperCut"]  # by name, any case
    assert keys(tis) == ["lsword"]
    assert len(keys(ckpts)) == len(engine.list_checkpoints()) and "tiny-sd1.safetensors" in ckpts
    assert keys(panel.render("", "Name (Z-A)")[2]) == ["paperCut", "inkStyle", "Glow"]
    assert keys(panel.render("", "Newest first")[2]) == ["inkStyle", "Glow", "paperCut"]
    assert keys(panel.render("", "Oldest first")[2]) == ["paperCut", "Glow", "inkStyle"]
    # search: name, trigger word, description; every word must match
    assert keys(panel.render("origami", SORT)[2]) == ["paperCut"]
    assert keys(panel.render("sumi", SORT)[2]) == ["inkStyle"]
    assert keys(panel.render("GLOW neon", SORT)[2]) == ["Glow"]
    empty = panel.render("zebra", SORT)
    assert keys(empty[2]) == [] and "Nothing matches" in empty[2]
    # the preview is a data-URI thumbnail (the model folders stay out of the file route); no preview: initials
    cards = panel.render("", SORT)[2]
    ink = cards[cards.index('data-key="inkStyle"'):cards.index('data-key="paperCut"')]
    assert 'src="data:image/jpeg;base64,' in ink
    glow = cards[cards.index('data-key="Glow"'):cards.index('data-key="inkStyle"')]
    assert "<img" not in glow and ">G</div>" in glow


def test_checkpoint_card_switches_through_the_header(engine, nets):
    from webui.ui.header import Header

    panel = panel_for(engine)
    engine.load_checkpoint("tiny-sd1")
    target = next(c.title for c in engine.list_checkpoints() if c.name == "tiny-sd1-b.safetensors")
    prompt, _, status, pending, _ = click(panel, "checkpoints", target, "a cat")
    assert pending == target and prompt is None and "Loading checkpoint" in status
    steps = list(panel.switch_checkpoint(Header(panel.ctx), pending, [64, 64], 64, 64))
    assert engine.active_model().title == target
    assert steps[-2][0]["value"] == target  # the header's dropdown shows it
    assert "Loaded checkpoint" in steps[-1][-2] and steps[-1][-1] is None
    _, _, status, pending, _ = click(panel, "checkpoints", target)
    assert pending is None and "is the loaded checkpoint" in status


def test_replace_preview_writes_next_to_the_file(engine, nets):
    from webui.engine.image_files import read_infotext

    panel = panel_for(engine)
    result = Image.new("RGB", (16, 16), (10, 200, 30))
    records = [{"path": None, "image": Image.new("RGB", (8, 8)), "infotext": "first"},
               {"path": None, "image": result, "infotext": "a glow\nSteps: 3, Seed: 7"}]
    _, _, status, _, cards = click(panel, "lora", "Glow", "keep me", action="preview", records=records, selected=1)
    saved = nets / "models" / "Lora" / "Glow.preview.png"
    assert saved.is_file() and "Saved the selected result as the preview of Glow" in status
    with Image.open(saved) as im:
        assert im.getpixel((0, 0)) == (10, 200, 30)
    assert read_infotext(saved) == "a glow\nSteps: 3, Seed: 7"
    glow = cards[cards.index('data-key="Glow"'):cards.index('data-key="inkStyle"')]
    assert 'src="data:image/jpeg;base64,' in glow  # the card shows it at once
    # an embedding's and a saved result file (the record's path)
    out = nets / "result.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out)
    click(panel, "textual_inversion", "lsword", action="preview", records=[{"path": str(out), "infotext": "x"}])
    assert (nets / "embeddings" / "lsword.preview.png").is_file()
    # nothing generated yet
    _, _, status, _, _ = click(panel, "lora", "paperCut", action="preview", records=[])
    assert "generate an image first" in status and not (nets / "models" / "Lora" / "paperCut.preview.png").exists()


@pytest.mark.parametrize("flag", ["lock_folders", "freeze_settings"])
def test_replace_preview_refused_when_folders_are_locked(engine, nets, flag):
    engine.settings = engine.settings.with_overrides(**{flag: True})
    panel = panel_for(engine)
    assert "ls-card-replace" not in panel.render("", SORT)[2]  # no "Replace preview" button on the cards
    records = [{"path": None, "image": Image.new("RGB", (8, 8)), "infotext": "x"}]
    _, _, status, _, _ = click(panel, "lora", "Glow", action="preview", records=records)
    assert "cannot be replaced" in status
    assert not (nets / "models" / "Lora" / "Glow.preview.png").exists()


def test_save_preview_only_inside_the_model_folders(engine, nets, tmp_path_factory):
    from webui.engine.networks.catalog import PreviewRefused, save_preview

    elsewhere = tmp_path_factory.mktemp("elsewhere") / "evil.safetensors"
    elsewhere.write_bytes(b"x")
    image = Image.new("RGB", (4, 4))
    with pytest.raises(PreviewRefused, match="not inside the model folders"):
        save_preview(engine.settings, elsewhere, image)
    with pytest.raises(PreviewRefused):
        save_preview(engine.settings, nets / "models" / "Lora" / ".." / ".." / "outputs" / "x.safetensors", image)
    assert not elsewhere.with_name("evil.preview.png").exists()
    # a symlink named like the preview is replaced, never written through
    target = tmp_path_factory.mktemp("victim") / "file.png"
    target.write_bytes(b"keep")
    link = nets / "models" / "Lora" / "paperCut.preview.png"
    link.symlink_to(target)
    saved = save_preview(engine.settings, nets / "models" / "Lora" / "paperCut.safetensors", image)
    assert saved == link and not saved.is_symlink() and target.read_bytes() == b"keep"
