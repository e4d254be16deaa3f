"""Offline resources: CLIP tokenizer files and per-family diffusers configs.

Fast and network-free: models are only built on the meta device.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from webui import resources
from webui.resources import make_tokenizer

BOS, EOS = 49406, 49407

# Parameter counts of the public reference models (float32 weights).
EXPECTED_PARAMS = {
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------- paths


def test_paths():
    assert resources.RESOURCES_DIR == Path(resources.__file__).resolve().parent
    assert resources.FAMILIES == ("sd1", "sd2", "sdxl")
    for family in resources.FAMILIES:
        d = resources.config_dir(family)
        assert isinstance(d, Path)
        assert d == resources.RESOURCES_DIR / "configs" / family
        assert (d / "model_index.json").is_file()


def test_unknown_family():
    with pytest.raises(ValueError):
        resources.config_dir("sd3")
    with pytest.raises(ValueError):
        resources.tokenizers_for("flux")


# --------------------------------------------------------------------------- tokenizer files


def _shipped_vocab() -> dict[str, int]:
    with open(resources.CLIP_TOKENIZER_DIR / "vocab.json", encoding="utf-8") as f:
        return json.load(f)


def _shipped_merges() -> list[tuple[str, str]]:
    text = (resources.CLIP_TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == "#version: 0.2"
    return [tuple(line.split(" ")) for line in lines[1:] if line]


def test_vocab_layout():
    vocab = _shipped_vocab()
    merges = _shipped_merges()
    assert len(vocab) == 49408
    assert sorted(vocab.values()) == list(range(49408))
    assert len(merges) == 49152 - 256 - 2
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert vocab["<|startoftext|>"] == BOS and vocab["<|endoftext|>"] == EOS
    # The vocabulary is exactly bytes, bytes+</w>, merges, specials.
    assert vocab == make_tokenizer.build_vocab(merges)


def test_byte_symbols():
    symbols = make_tokenizer.byte_symbols()
    assert len(symbols) == len(set(symbols)) == 256
    assert symbols[:3] == ["!", '"', "#"]
    assert not any(s.isspace() for s in symbols)


# --------------------------------------------------------------------------- tokenizers


def test_clip_tokenizer_ids():
    tok = resources.clip_tokenizer()
    assert tok("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert tok.model_max_length == 77
    assert len(tok) == 49408
    assert tok.bos_token_id == BOS and tok.eos_token_id == EOS
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == EOS


def test_clip_tokenizer_is_fresh():
    a = resources.clip_tokenizer()
    b = resources.clip_tokenizer()
    assert a is not b
    a.pad_token = "!"
    assert b.pad_token_id == EOS
    assert resources.clip_tokenizer().pad_token_id == EOS


def test_pad_token_override():
    tok = resources.clip_tokenizer(pad_token="!")
    assert tok.pad_token == "!" and tok.pad_token_id == 0
    ids = tok("a photo of a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77
    assert ids[:7] == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert set(ids[7:]) == {0}
    # "!" in a prompt is regular BPE text (as in OpenCLIP / A1111), not a split-out pad token.
    assert tok("wow!").input_ids == resources.clip_tokenizer()("wow!").input_ids == [BOS, 2781, 256, EOS]
    assert len(tok) == 49408


def test_pad_token_must_be_in_vocab():
    with pytest.raises(ValueError):
        resources.clip_tokenizer(pad_token="<pad>")


def test_truncation_to_77():
    tok = resources.clip_tokenizer()
    ids = tok("cat " * 200, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    assert len(ids) == 77 and ids[0] == BOS and ids[-1] == EOS


@pytest.mark.parametrize(
    "family, expected",
    [
        ("sd1", {"tokenizer": EOS}),
        ("sd2", {"tokenizer": 0}),
        ("sdxl", {"tokenizer": EOS, "tokenizer_2": 0}),
    ],
)
def test_tokenizers_for(family, expected):
    toks = resources.tokenizers_for(family)
    assert set(toks) == set(expected)
    for name, pad_id in expected.items():
        tok = toks[name]
        assert tok.pad_token_id == pad_id
        assert tok.model_max_length == 77
        assert tok("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
        ids = tok("a cat", padding="max_length", max_length=77).input_ids
        assert ids[:4] == [BOS, 320, 2368, EOS] and ids[-1] == pad_id
    if family == "sdxl":
        assert toks["tokenizer"] is not toks["tokenizer_2"]


def test_fast_alias_is_same_tokenizer():
    from transformers import CLIPTokenizerFast

    tok = resources.clip_tokenizer()
    assert isinstance(tok, CLIPTokenizerFast)
    fast = CLIPTokenizerFast.from_pretrained(str(resources.CLIP_TOKENIZER_DIR), local_files_only=True)
    for text in ["a photo of a cat", "Hello, World! (masterpiece:1.2), café  日本", "wow!!"]:
        assert fast(text).input_ids == tok(text).input_ids


# --------------------------------------------------------------------------- configs


def _read(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_config_folders(family):
    d = resources.config_dir(family)
    index = _read(d / "model_index.json")
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        if name.startswith("tokenizer") or name == "safety_checker":
            continue  # tokenizers are passed as objects; the safety checker is never loaded
        assert (d / name).is_dir(), name
    for path in d.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert "/snapshots/" not in text and "cache/huggingface" not in text, path


def test_config_values():
    sd1 = resources.config_dir("sd1")
    sd2 = resources.config_dir("sd2")
    sdxl = resources.config_dir("sdxl")
    assert _read(sd1 / "model_index.json")["_class_name"] == "StableDiffusionPipeline"
    assert _read(sd1 / "unet" / "config.json")["cross_attention_dim"] == 768
    assert _read(sd1 / "scheduler" / "scheduler_config.json")["_class_name"] == "PNDMScheduler"

    unet2 = _read(sd2 / "unet" / "config.json")
    assert unet2["cross_attention_dim"] == 1024 and unet2["use_linear_projection"] is True
    assert unet2["upcast_attention"] is False
    assert _read(sd2 / "scheduler" / "scheduler_config.json")["prediction_type"] == "epsilon"
    assert _read(sd2 / "model_index.json")["requires_safety_checker"] is False

    index_xl = _read(sdxl / "model_index.json")
    assert index_xl["_class_name"] == "StableDiffusionXLPipeline"
    assert index_xl["force_zeros_for_empty_prompt"] is True
    vae_xl = _read(sdxl / "vae" / "config.json")
    assert vae_xl["force_upcast"] is True and vae_xl["scaling_factor"] == 0.13025
    unet_xl = _read(sdxl / "unet" / "config.json")
    assert unet_xl["transformer_layers_per_block"] == [1, 2, 10]
    assert unet_xl["addition_embed_type"] == "text_time"
    assert unet_xl["projection_class_embeddings_input_dim"] == 2816
    sched_xl = _read(sdxl / "scheduler" / "scheduler_config.json")
    assert sched_xl["_class_name"] == "EulerDiscreteScheduler" and sched_xl["timestep_spacing"] == "leading"
    te2 = _read(sdxl / "text_encoder_2" / "config.json")
    assert te2["architectures"] == ["CLIPTextModelWithProjection"] and te2["projection_dim"] == 1280


def _build_meta_models(family: str) -> dict[str, torch.nn.Module]:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    d = resources.config_dir(family)
    with init_empty_weights():
        models = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(d / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(d / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(d / "text_encoder", local_files_only=True)),
        }
        if (d / "text_encoder_2").is_dir():
            config_2 = CLIPTextConfig.from_pretrained(d / "text_encoder_2", local_files_only=True)
            models["text_encoder_2"] = CLIPTextModelWithProjection(config_2)
    return models


@pytest.fixture(scope="module")
def meta_models():
    return {family: _build_meta_models(family) for family in resources.FAMILIES}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_parameter_counts(meta_models, family):
    models = meta_models[family]
    assert set(models) == set(EXPECTED_PARAMS[family])
    for name, model in models.items():
        params = list(model.parameters())
        assert sum(p.numel() for p in params) == EXPECTED_PARAMS[family][name], name
        assert {p.device.type for p in params} == {"meta"}, name
        assert {p.dtype for p in params} == {torch.float32}, name


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_pipeline_assembles_offline(meta_models, family):
    import diffusers
    from transformers import CLIPImageProcessor

    d = resources.config_dir(family)
    index = _read(d / "model_index.json")
    pipeline_cls = getattr(diffusers, index["_class_name"])
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    components = dict(meta_models[family])
    components["scheduler"] = scheduler_cls.from_pretrained(d, subfolder="scheduler", local_files_only=True)
    components.update(resources.tokenizers_for(family))
    if family == "sdxl":
        components["add_watermarker"] = False
    else:
        components["feature_extractor"] = CLIPImageProcessor.from_pretrained(
            d, subfolder="feature_extractor", local_files_only=True
        )
        components["safety_checker"] = None
        components["requires_safety_checker"] = False
    pipe = pipeline_cls(**components)
    assert pipe.vae_scale_factor == 8
    assert pipe.tokenizer.pad_token_id == (0 if family == "sd2" else EOS)
    if family == "sdxl":
        assert pipe.tokenizer_2.pad_token_id == 0
        assert pipe.vae.config.scaling_factor == 0.13025


# --------------------------------------------------------------------------- single-file detection


def test_infer_diffusers_model_type():
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES as keys
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    def meta(*shape):
        return torch.empty(*shape, device="meta")

    def unet_in(channels):
        return {keys["inpainting"]: meta(320, channels, 3, 3)}

    sd1 = {**unet_in(4), keys["v1"]: meta(320, 640, 1, 1), keys["clip"]: meta(77, 768)}
    sd2 = {**unet_in(4), keys["v1"]: meta(320, 640, 1, 1), keys["v2"]: meta(320, 1024), keys["open_clip"]: meta(49408, 1024)}
    sdxl = {**unet_in(4), keys["xl_base"]: meta(1280), keys["clip_sdxl"]: meta(77, 768)}
    cases = {
        "v1": sd1,
        "inpainting": {**sd1, **unet_in(9)},
        "v2": sd2,
        "inpainting_v2": {**sd2, **unet_in(9)},
        "xl_base": sdxl,
        "xl_inpaint": {**sdxl, **unet_in(9)},
        "xl_refiner": {**unet_in(4), keys["xl_refiner"]: meta(1280)},
    }
    for expected, checkpoint in cases.items():
        assert infer_diffusers_model_type(checkpoint) == expected
