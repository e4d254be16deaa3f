"""Network file helpers without a model: key layouts, family guesses, hashes, not-found messages, previews."""
from __future__ import annotations

import hashlib

import torch
from safetensors.torch import save_file

from webui.engine.networks.common import addnet_hash, find_preview, not_found_message
from webui.engine.networks.lora_convert import _split_peft, guess_family


def test_peft_and_old_diffusers_keys():
    assert _split_peft("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight") == (
        "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down")
    assert _split_peft("unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight") == (
        "unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0", "up")
    assert _split_peft("text_encoder.text_model.encoder.layers.3.self_attn.to_k_lora.down.weight") == (
        "text_encoder", "text_model.encoder.layers.3.self_attn.k_proj", "down")
    assert _split_peft("text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.up.weight") == (
        "text_encoder_2", "text_model.encoder.layers.0.mlp.fc1", "up")
    assert _split_peft("unet.conv_in.lora_B.default.weight") == ("unet", "conv_in", "up")
    assert _split_peft("unet.x.to_q.alpha") == ("unet", "x.to_q", "alpha")
    assert _split_peft("something_else") is None


def test_family_guess_from_metadata_and_keys():
    t = torch.zeros(4, 2048)
    assert guess_family({}, {"ss_base_model_version": "sdxl_base_v1-0"}) == "sdxl"
    assert guess_family({}, {"ss_base_model_version": "sd_v1"}) == "sd1"
    assert guess_family({}, {"ss_v2": "True"}) == "sd2"
    assert guess_family({}, {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}) == "sdxl"
    assert guess_family({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": t}, {}) == "sdxl"
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
    assert guess_family({key: torch.zeros(4, 768)}, {}) == "sd1"
    assert guess_family({key: torch.zeros(4, 1024)}, {}) == "sd2"
    assert guess_family({"x.lora_down.weight": t}, {}) is None


def test_addnet_hash_ignores_the_metadata(tmp_path):
    t = {"a": torch.arange(6, dtype=torch.float32)}
    save_file(t, str(tmp_path / "a.safetensors"), metadata={"x": "1"})
    save_file(t, str(tmp_path / "b.safetensors"), metadata={"x": "a much longer value"})
    data = (tmp_path / "a.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    assert addnet_hash(tmp_path / "a.safetensors") == hashlib.sha256(data[8 + n:]).hexdigest()
    assert addnet_hash(tmp_path / "a.safetensors") == addnet_hash(tmp_path / "b.safetensors")


def test_not_found_message_suggests():
    msg = not_found_message("LoRA", "add_detial", ["add_detail", "add_detail", "other"])
    assert msg == "LoRA 'add_detial' not found; did you mean: add_detail"
    assert "available: a, b" in not_found_message("LoRA", "zzz", ["b", "a"])
    assert "none found" in not_found_message("LoRA", "zzz", [])


def test_preview_next_to_the_file(tmp_path):
    f = tmp_path / "x.safetensors"
    f.write_bytes(b"")
    assert find_preview(f) is None
    (tmp_path / "x.png").write_bytes(b"")
    assert find_preview(f) == tmp_path / "x.png"
    (tmp_path / "x.preview.jpg").write_bytes(b"")
    assert find_preview(f) == tmp_path / "x.preview.jpg"
