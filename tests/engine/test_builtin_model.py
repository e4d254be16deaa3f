"""Acceptance tests for the built-in shapes model (trained by
``python -m webui.training.demo``): file formats, and that generation really
follows the prompt, measured with a plain pixel classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.fixtures import shapes_eval
from tests.fixtures.builtin_generate import CHECKPOINT, EMBEDDINGS_DIR, LORA_DIR

LORA = LORA_DIR / "latent-studio-invert.safetensors"
EMBEDDING = EMBEDDINGS_DIR / "lsstar.safetensors"


def _meta_and_keys(path: Path):
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}, {k: f.get_slice(k) for k in f.keys()}


# ---------------------------------------------------------------- file formats

def test_checkpoint_is_small_fp16_ldm_single_file():
    assert CHECKPOINT.stat().st_size <= 40 * 1024 * 1024
    meta, slices = _meta_and_keys(CHECKPOINT)
    assert meta["modelspec.architecture"] == "stable-diffusion-v1"
    assert meta["modelspec.sai_model_spec"] == "1.0.0"
    assert meta["modelspec.prediction_type"] == "epsilon"
    assert meta["modelspec.resolution"] == "64x64"
    assert 0.05 < float(meta["latent_studio.vae_scaling_factor"]) < 20
    prefixes = {k.split(".")[0] for k in slices}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert any(k.startswith("cond_stage_model.transformer.text_model.") for k in slices)
    assert slices["model.diffusion_model.input_blocks.0.0.weight"].get_shape()[1] == 4
    assert slices["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].get_shape()[0] == 49408
    assert {s.get_dtype() for s in slices.values()} == {"F16"}


def test_lora_is_kohya_format():
    meta, slices = _meta_and_keys(LORA)
    assert meta["ss_output_name"] == "latent-studio-invert"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert "lsinvert" in json.dumps(json.loads(meta["ss_tag_frequency"]))
    assert slices and {k.split("_")[1] for k in slices} == {"unet", "te"}
    downs = [k for k in slices if k.endswith(".lora_down.weight")]
    assert downs
    for k in downs:
        base = k[: -len(".lora_down.weight")]
        assert f"{base}.lora_up.weight" in slices and f"{base}.alpha" in slices
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in slices


def test_embedding_is_a1111_format():
    with safe_open(str(EMBEDDING), "pt") as f:
        emb = f.get_tensor("emb_params")
    assert emb.ndim == 2 and emb.shape[1] == 128 and emb.dtype == torch.float16


# ---------------------------------------------------------------- generation
# About 70 s together on this 2-core CPU (54 + 28 + 8 + 16 + 16 images at 20 steps), hence slow.
#
# Issue 3's targets are shape colour >= 90%, position >= 80%, img2img at strength 0.3 close to its input, a LoRA
# that inverts colours and an embedding that draws stars.  The shipped model (58 min of training on the 2-core CPU
# it was trained on, `python -m webui.training.demo --seed 0`, see README) measured: background 100%, position
# 100%, shape colour 100%, size 94%, shape 28% (chance: 14%, 11%, 12.5%, 50%, 33%).  img2img with a prompt naming only the
# shape: mean pixel distance 4.8 at 0.3, 26.4 at 0.9.  The LoRA inverts 8 of 8 backgrounds (0 without it); the
# star embedding does not draw stars: the VAE already turns a drawn star into a blob
# (bench/builtin_vae_ceiling.py) and the UNet turns a noised triangle into one (bench/builtin_shape_denoise.py),
# so it has no shape for an embedding to pick.  The floors below catch regressions of what it does reach; the
# unmet target is a strict xfail, so it fails loudly (XPASS) once a better model meets it.

UNMET = "issue 3 target not reached by the shipped model (figures above)"


@pytest.fixture(scope="module")
def generate():
    from tests.fixtures.builtin_generate import make_generate

    return make_generate(steps=20)


@pytest.fixture(scope="module")
def accuracy(generate):
    r = shapes_eval.attribute_accuracy(generate, n=54)
    print({k: v for k, v in r.items() if k != "failures"})
    return r


@pytest.fixture(scope="module")
def img2img(generate):
    return shapes_eval.img2img_effect(generate, n=4)


@pytest.fixture(scope="module")
def lora(generate):
    return shapes_eval.lora_effect(generate, n=8)


@pytest.fixture(scope="module")
def embedding(generate):
    return shapes_eval.embedding_effect(generate, n=8)


@pytest.mark.slow
def test_prompt_controls_background_position_and_colour(accuracy):
    # the issue's targets: shape colour >= 90%, position >= 80%
    assert accuracy["color"] >= 0.9, accuracy
    assert accuracy["position"] >= 0.8, accuracy
    assert accuracy["background"] >= 0.9, accuracy
    assert accuracy["size"] >= 0.75, accuracy


@pytest.mark.slow
def test_negative_prompt_removes_a_colour(generate):
    r = shapes_eval.negative_prompt_effect(generate, color="red", n=14)
    print(r)
    assert r["with"]["pixel_fraction"] < r["without"]["pixel_fraction"]
    assert r["with"]["rate"] <= r["without"]["rate"]


@pytest.mark.slow
def test_img2img_strength_keeps_the_layout_at_0_3_not_at_0_9(img2img):
    print(img2img)
    # The issue's target: with a prompt that leaves colours and place open, 0.3 stays close to the input.
    assert img2img["distance_open_0.3"] < 25, img2img
    assert img2img["distance_open_0.9"] > 2 * img2img["distance_open_0.3"], img2img
    # A prompt that describes another picture wins at 0.9.
    assert img2img["follows_other_0.9"] >= 0.5, img2img


@pytest.mark.slow
def test_lora_inverts_the_colours(lora):
    assert lora["inverted_base"] <= 0.1, lora
    assert lora["inverted_lora"] >= 0.75, lora  # the issue: the LoRA does what it claims, for most images
    assert lora["mean_pixel_change"] > 80, lora


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=UNMET)
def test_issue_target_embedding_draws_stars(embedding):
    # "Draws stars": most images classified as a star, not only a star IoU a hair above a blob's.
    assert embedding["embedding"]["star_rate"] >= 0.5, embedding
    assert embedding["embedding"]["star_iou"] > embedding["word"]["star_iou"], embedding
