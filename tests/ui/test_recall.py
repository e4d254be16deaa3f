"""Parameter recall (issue 18) at the handler level: ↙ with an infotext in the prompt box, PNG Info and its "Send to"
buttons restore every field we have, switch the checkpoint and VAE through the header, and name every key they
could not restore in the status line."""
from __future__ import annotations

import json

import gradio as gr
import pytest
from safetensors.torch import save_file

from webui.engine.infotext import param_pairs, quote
from webui.engine.samplers import SamplerError, resolve

STYLES = 'name,prompt,negative_prompt\nCinematic,"{prompt}, cinematic light",blurry\nSharp,sharp focus,\n'


@pytest.fixture
def vae_file(data_dir):
    from tests.fixtures.tiny_models import make_tiny_pipeline
    from webui.engine.checkpoints.ldm_export import vae_to_ldm

    d = data_dir / "models" / "VAE"
    d.mkdir(parents=True)
    ldm = vae_to_ldm(make_tiny_pipeline("sd1", seed=5).vae)
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(d / "other-vae.safetensors"))
    return d / "other-vae.safetensors"


@pytest.fixture
def ui(engine, vae_file, data_dir):
    from webui.ui.context import UiContext
    from webui.ui.generation import GenerationPanel
    from webui.ui.header import Header

    (data_dir / "styles.csv").write_text(STYLES, encoding="utf-8")
    ctx = UiContext(engine)
    with gr.Blocks():
        header = Header(ctx).build()
        t2i, i2i = GenerationPanel(ctx, "txt2img").build(), GenerationPanel(ctx, "img2img").build()
    return header, t2i, i2i


def pasted(panel, values: list) -> tuple[dict, str, dict]:
    """(field key -> value, left out where the paste skips it; the status text; the paste target)."""
    out = dict(zip(panel.paste_outputs(), values))
    fields = {k: out[c] for k, c in panel.fields.items() if out[c] != gr.skip()}
    return fields, out[panel.status], out[panel.paste_target]


def a1111_text(model_hash: str, **over) -> str:
    keys = {"Steps": "13", "Sampler": "Euler a", "Schedule type": "Karras", "CFG scale": "5.5", "Seed": "4242",
            "Face restoration": "CodeFormer", "Size": "128x64", "Model hash": model_hash, "Model": "tiny-sd1-b",
            "VAE hash": "0123456789", "VAE": "other-vae.safetensors", "Variation seed": "77",
            "Variation seed strength": "0.3", "Denoising strength": "0.45", "Clip skip": "2", "RNG": "NV",
            "Tiling": "True", "Hires upscale": "1.5", "Hires steps": "3", "Hires upscaler": "Latent (nearest)",
            "ADetailer model": "face_yolov8n.pt", "ADetailer confidence": "0.3",
            "Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "lsstar: 0123456789ab", "Emphasis": "No norm",
            "Version": "v1.10.1", **over}
    line = ", ".join(f"{k}: {quote(v)}" for k, v in keys.items() if v is not None)
    return f"a castle on a hill\nNegative prompt: fog, people\n{line}"


def valid_pair(sampler: str, schedule: str) -> bool:
    try:
        resolve(sampler, schedule)
        return True
    except SamplerError:
        return False


def test_paste_button_restores_every_field_and_names_the_rest(ui, engine):
    header, t2i, _ = ui
    b = engine.resolve_checkpoint("tiny-sd1-b")
    fields, status, target = pasted(t2i, t2i.paste_from_prompt(a1111_text(b.shorthash), ""))
    assert fields == {
        "prompt": "a castle on a hill", "negative_prompt": "fog, people", "styles": [], "steps": 13,
        "sampler_name": "Euler a", "scheduler": "Karras" if valid_pair("Euler a", "Karras") else "Automatic",
        "cfg_scale": 5.5, "seed": 4242, "width": 128, "height": 64, "subseed": 77, "subseed_strength": 0.3,
        "clip_skip": 2, "denoising_strength": 0.45, "restore_faces": True, "tiling": True, "enable_hr": True,
        "hr_scale": 1.5, "hr_second_pass_steps": 3, "hr_upscaler": "Latent (nearest)", "hr_resize_x": 0,
        "hr_resize_y": 0, "hr_sampler_name": "Use same sampler", "hr_scheduler": "Use same scheduler",
        "hr_checkpoint_name": "Use same checkpoint", "hr_prompt": "", "hr_negative_prompt": ""}
    assert target == {"checkpoint": b.title, "vae": "other-vae.safetensors"}
    karras = "" if valid_pair("Euler a", "Karras") else \
        "Schedule type: Karras (not available for Euler a, Automatic used); "
    assert status.count("ls-warn") == 1 and (
        f"Parameters restored. Switching to {b.title}. Not restored: {karras}ADetailer model, ADetailer confidence, "
        "Emphasis (no such setting here); RNG, Lora hashes, TI hashes, Version (informational).") in status

    # the header then switches to the checkpoint and the VAE, as its dropdowns do; the pasted size stays
    outs = list(header.apply_pasted(target, [64, 64]))
    checkpoint, _, message, native, vae, consumed = outs[-1]
    assert checkpoint["value"] == b.title == engine.active_model().title
    assert vae["value"] == "other-vae.safetensors" == engine.vae_choice
    assert native == [64, 64] and consumed is None and not message["visible"]
    _, status, target = pasted(t2i, t2i.paste_from_prompt(a1111_text(b.shorthash), ""))
    assert target == {"checkpoint": None, "vae": None} and "Switching" not in status  # already active


def test_missing_model_vae_sampler_and_schedule_are_named_and_the_current_ones_kept(ui, engine):
    _, t2i, _ = ui
    text = a1111_text("6ce0161689", Model="v1-5-pruned-emaonly", VAE="nope.safetensors", Sampler="Restart",
                      **{"Hires upscaler": "4x-UltraSharp", "Hires sampler": "DPM++ 2M", "Hires schedule type": "Zigzag"})
    fields, status, target = pasted(t2i, t2i.paste_values(text))
    assert target == {"checkpoint": None, "vae": None}
    assert "sampler_name" not in fields and "scheduler" not in fields and "hr_upscaler" not in fields
    assert (fields["hr_sampler_name"], fields["hr_scheduler"]) == ("DPM++ 2M", "Automatic")
    assert ("Not restored: Sampler: Restart (not available here); Hires schedule type: Zigzag (not available for "
            "DPM++ 2M, Automatic used); Model: v1-5-pruned-emaonly [6ce0161689] (not found, keeping none loaded); "
            "VAE: nope.safetensors (not found, keeping Automatic); Hires upscaler: 4x-UltraSharp (not installed); "
            "ADetailer model") in status

    engine.load_checkpoint("tiny-sd1")
    _, status, _ = pasted(t2i, t2i.paste_values(text.replace("Schedule type: Karras", "Schedule type: Zigzag")
                                                    .replace("Sampler: Restart", "Sampler: Euler a")))
    assert "Schedule type: Zigzag (not available for Euler a, Automatic used)" in status
    assert f"Model: v1-5-pruned-emaonly [6ce0161689] (not found, keeping {engine.active_model().title})" in status


def test_combined_sampler_name_and_a_model_found_by_name(ui, engine):
    _, t2i, _ = ui
    text = ("a dog\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 5, Size: 64x64, "
            "Model hash: 0000000000, Model: tiny-sd1-b, Version: v1.5.1")
    fields, status, target = pasted(t2i, t2i.paste_values(text))
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ 2M", "Karras")
    assert (fields["negative_prompt"], fields["subseed_strength"], fields["enable_hr"], fields["tiling"],
            fields["restore_faces"], fields["clip_skip"]) == ("", 0.0, False, False, False, 1)
    b = engine.resolve_checkpoint("tiny-sd1-b")
    assert target["checkpoint"] == b.title
    assert f"Model hash: 0000000000 (differs: {b.title} was found by its name)" in status


def test_img2img_gets_inpaint_keys_and_names_the_hires_ones(ui):
    _, t2i, i2i = ui
    text = a1111_text("0", **{"Mask blur": "8", "Masked content": "latent noise", "Inpaint area": "Only masked",
                              "Masked area padding": "48", "ADetailer model": None, "ADetailer confidence": None,
                              "Emphasis": None})
    fields, status, _ = pasted(i2i, i2i.paste_values(text))
    assert (fields["denoising_strength"], fields["mask_blur"], fields["masked_content"], fields["inpaint_area"],
            fields["inpaint_padding"]) == (0.45, 8, "latent noise", "Only masked", 48)
    assert "mask_mode" not in fields and "enable_hr" not in fields
    assert "Hires upscale, Hires steps, Hires upscaler (txt2img only)" in status
    _, status, _ = pasted(t2i, t2i.paste_values(text))
    assert "Mask blur, Masked content, Inpaint area, Masked area padding (img2img only)" in status


def test_styles_from_the_styles_array_or_the_prompt(ui, engine):
    from webui.engine.requests import GenerationRequest

    _, t2i, _ = ui
    names = quote(json.dumps(["Cinematic", "Sharp", "Gone"]))
    text = f"a cat, cinematic light, sharp focus\nNegative prompt: fog, blurry\nSteps: 2, Seed: 1, Styles array: {names}"
    fields, status, _ = pasted(t2i, t2i.paste_values(text))
    assert (fields["prompt"], fields["negative_prompt"], fields["styles"]) == ("a cat", "fog", ["Cinematic", "Sharp"])
    assert "Styles array: Gone (not in styles.csv or changed since; the prompt keeps its text)" in status
    # no Styles array (A1111's default): saved styles the prompt ends with are still found
    fields, _, _ = pasted(t2i, t2i.paste_values("a dog, sharp focus\nSteps: 2, Seed: 1, Size: 64x64"))
    assert (fields["prompt"], fields["styles"]) == ("a dog", ["Sharp"])
    # our own infotext round-trips
    r = engine.generate(GenerationRequest(prompt="a fox", negative_prompt="", styles=["Cinematic"], steps=1,
                                          width=64, height=64, seed=3, save_images=False))
    fields, status, _ = pasted(t2i, t2i.paste_values(r.infotexts[0]))
    assert (fields["prompt"], fields["negative_prompt"], fields["styles"]) == ("a fox", "", ["Cinematic"])
    assert "ls-ok" in status and "Not restored: RNG, Version (informational)." in status


def test_paste_button_without_parameters_changes_nothing(ui):
    _, t2i, _ = ui
    fields, status, target = pasted(t2i, t2i.paste_from_prompt("just a prompt", ""))
    assert fields == {} and target is None and "No generation parameters found" in status
    fields, _, _ = pasted(t2i, t2i.paste_from_prompt("  ", "a cow\nSteps: 3, Seed: 9, Size: 64x64"))
    assert (fields["prompt"], fields["steps"], fields["seed"]) == ("a cow", 3, 9)  # empty box: the last result's


def test_png_info_shows_every_key(tmp_path):
    from PIL import Image

    from webui.engine.image_files import save_image_with_infotext
    from webui.ui.pnginfo_tab import read

    text = a1111_text("0123456789", **{f"Extra key {i}": f"value {i}" for i in range(20)})
    src = save_image_with_infotext(Image.new("RGB", (8, 8)), tmp_path / "many.png", text)
    shown, table = read(str(src))
    assert shown == text
    keys = [key for key, _ in param_pairs(text.splitlines()[-1])]
    assert len(keys) == 46
    for key in ["Prompt", "Negative prompt", *keys]:
        assert f"<th>{key}</th>" in table, key
    assert "<td>128x64</td>" in table and "<td>add_detail: 7c6bad76eb54</td>" in table
