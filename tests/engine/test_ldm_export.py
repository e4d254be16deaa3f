"""diffusers -> LDM single-file export, checked against diffusers' own LDM -> diffusers converters."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from tests.fixtures import tiny_models as tm
from webui.engine.checkpoints import ldm_export as le

ALL = tm.TINY_FAMILIES  # sd1, sd1-inpaint, sd2, sd2-v, sdxl

_PIPES: dict[str, object] = {}


def pipe_for(family: str):
    """One shared tiny pipeline per family (read-only in the tests)."""
    if family not in _PIPES:
        _PIPES[family] = tm.make_tiny_pipeline(family, seed=0)
    return _PIPES[family]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def without_text_model_prefix(model, sd: dict) -> dict:
    # transformers >= 5: CLIPTextModel has no `text_model.` level, CLIPTextModelWithProjection has.
    if hasattr(model, "text_model"):
        return sd
    return {k.removeprefix("text_model."): v for k, v in sd.items()}


def fresh(module):
    """An untrained module of the same class and config."""
    if hasattr(type(module), "from_config"):  # diffusers
        return type(module).from_config(module.config)
    return type(module)(module.config)  # transformers


def clip_from_ldm(te, sd: dict, prefix: str | None, open_clip: bool):
    new = fresh(te)
    if open_clip:
        converted = convert_open_clip_checkpoint(new, sd, prefix=prefix)
    else:
        converted = convert_ldm_clip_checkpoint(sd)
    new.load_state_dict(without_text_model_prefix(new, converted), strict=True)
    return new.eval()


def tokens(n: int = 77) -> torch.Tensor:
    ids = torch.full((1, n), 49407)
    ids[0, :5] = torch.tensor([49406, 320, 736, 2866, 49407])
    return ids


# ---------------------------------------------------------------------------
# component round trips: export -> diffusers' converters -> strict load -> same outputs


@pytest.mark.parametrize("family", ALL)
def test_unet_and_vae_round_trip(family):
    pipe = pipe_for(family)
    sd = le.to_ldm_state_dict(pipe.unet, pipe.vae, None, family=tm.ldm_family(family))
    assert all(k.startswith((le.UNET_PREFIX, le.VAE_PREFIX)) for k in sd)

    unet = fresh(pipe.unet)
    unet.load_state_dict(convert_ldm_unet_checkpoint(sd, dict(pipe.unet.config)), strict=True)
    vae = fresh(pipe.vae)
    vae.load_state_dict(convert_ldm_vae_checkpoint(sd, dict(pipe.vae.config)), strict=True)
    assert_same_state(pipe.unet, unet)
    assert_same_state(pipe.vae, vae)

    g = torch.Generator().manual_seed(0)
    cfg = pipe.unet.config
    sample = torch.randn(1, cfg.in_channels, 8, 8, generator=g)
    context = torch.randn(1, 77, cfg.cross_attention_dim, generator=g)
    kwargs = {}
    if cfg.addition_embed_type == "text_time":
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, tm.SDXL_POOLED_DIM, generator=g),
            "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]),
        }
    with torch.no_grad():
        a = pipe.unet(sample, 500, context, **kwargs).sample
        b = unet.eval()(sample, 500, context, **kwargs).sample
        assert torch.equal(a, b)
        image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
        lat_a = pipe.vae.encode(image).latent_dist.mean
        lat_b = vae.eval().encode(image).latent_dist.mean
        assert lat_a.shape == (1, 4, 8, 8)  # the tiny VAE downsamples by 8 like the real one
        assert torch.equal(lat_a, lat_b)
        assert torch.equal(pipe.vae.decode(lat_a).sample, vae.decode(lat_a).sample)

    # LDM's AttnBlock uses 1x1 convs
    for name in ("q", "k", "v", "proj_out"):
        w = sd[f"first_stage_model.decoder.mid.attn_1.{name}.weight"]
        assert w.ndim == 4 and w.shape[2:] == (1, 1)


@pytest.mark.parametrize("family", ALL)
def test_text_encoder_round_trip(family):
    pipe = pipe_for(family)
    layout = tm.ldm_family(family)
    te2 = getattr(pipe, "text_encoder_2", None)
    sd = le.to_ldm_state_dict(pipe.unet, None, pipe.text_encoder, te2, family=layout)
    ids = tokens()

    if layout == "sd1":
        assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in sd
        new = clip_from_ldm(pipe.text_encoder, sd, None, open_clip=False)
    elif layout == "sd2":
        p = "cond_stage_model.model."
        assert sd[p + "transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 64, 64)
        assert p + "positional_embedding" in sd and p + "ln_final.weight" in sd
        new = clip_from_ldm(pipe.text_encoder, sd, p, open_clip=True)
    else:
        assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in sd
        new = clip_from_ldm(pipe.text_encoder, sd, None, open_clip=False)
        p = "conditioner.embedders.1.model."
        # OpenCLIP text_projection is [hidden, projection] (transposed nn.Linear weight)
        assert sd[p + "text_projection"].shape == (128, tm.SDXL_POOLED_DIM)
        new2 = clip_from_ldm(te2, sd, p, open_clip=True)
        assert_same_state(te2, new2)
        with torch.no_grad():
            a, b = te2(ids, output_hidden_states=True), new2(ids, output_hidden_states=True)
        assert torch.equal(a.text_embeds, b.text_embeds)
        assert torch.equal(a.hidden_states[-2], b.hidden_states[-2])

    assert_same_state(pipe.text_encoder, new)
    with torch.no_grad():
        assert torch.equal(pipe.text_encoder(ids).last_hidden_state, new(ids).last_hidden_state)


def test_sdxl_refiner_layout_without_clip_l():
    pipe = pipe_for("sdxl")
    sd = le.to_ldm_state_dict(pipe.unet, None, None, pipe.text_encoder_2, family="sdxl")
    prefix = "conditioner.embedders.0.model."
    assert prefix + "text_projection" in sd
    assert not any(k.startswith(("conditioner.embedders.1.", "conditioner.embedders.0.transformer.")) for k in sd)
    assert_same_state(pipe.text_encoder_2, clip_from_ldm(pipe.text_encoder_2, sd, prefix, open_clip=True))


def test_text_encoder_with_and_without_text_model_level():
    """CLIPTextModel (flat in transformers 5) and the nested layout export to the same names."""
    te = pipe_for("sd1").text_encoder
    flat = le.clip_to_ldm(te)
    assert all(k.startswith("text_model.") for k in flat)

    class Nested(torch.nn.Module):  # the transformers 4.x module layout
        def __init__(self, inner):
            super().__init__()
            self.text_model = inner

    nested = le.clip_to_ldm(Nested(te))
    assert flat.keys() == nested.keys()
    assert le.clip_to_open_clip(Nested(te)).keys() == le.clip_to_open_clip(te).keys()


# ---------------------------------------------------------------------------
# end to end: single file -> diffusers' from_single_file -> same image


def _config_only_folder(pipe, path):
    """A diffusers folder without weights: from_single_file must take them from the file."""
    tm.write_diffusers_folder(pipe, path)
    removed = 0
    for root, _, files in os.walk(path):
        for name in files:
            if name.endswith((".safetensors", ".bin")):
                os.remove(os.path.join(root, name))
                removed += 1
    assert removed >= 3
    return path


def _generate(pipe, family):
    kwargs = dict(prompt="a red circle", num_inference_steps=2, output_type="np")
    if family == "sd1-inpaint":
        kwargs["image"] = Image.new("RGB", (64, 64), (200, 30, 30))
        kwargs["mask_image"] = Image.new("L", (64, 64), 255)
    return pipe(**kwargs, generator=torch.Generator().manual_seed(1)).images


@pytest.mark.parametrize("family", ALL)
def test_from_single_file_same_image(family, tmp_path, no_network):
    pipe = pipe_for(family)
    config = _config_only_folder(pipe, tmp_path / "config")
    path = tm.write_single_file(pipe, tmp_path / "model.safetensors", family, metadata={"family": family})

    loaded = type(pipe).from_single_file(str(path), config=str(config), local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.scheduler) is type(pipe.scheduler)
    assert loaded.scheduler.config.prediction_type == pipe.scheduler.config.prediction_type

    expected = _generate(pipe, family)
    assert expected.shape == (1, 64, 64, 3)
    assert float(expected.std()) > 0.01  # not a blank image
    np.testing.assert_array_equal(_generate(loaded, family), expected)


def test_ckpt_loads_weights_only_and_matches(tmp_path, no_network):
    pipe = pipe_for("sd1")
    ckpt = tm.write_ckpt(pipe, tmp_path / "model.ckpt", "sd1")
    data = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert set(data) == {"state_dict"}
    single = load_file(tm.write_single_file(pipe, tmp_path / "model.safetensors", "sd1"))
    assert data["state_dict"].keys() == single.keys()
    assert all(torch.equal(data["state_dict"][k], single[k]) for k in single)

    config = _config_only_folder(pipe, tmp_path / "config")
    loaded = type(pipe).from_single_file(str(ckpt), config=str(config), local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_generate(loaded, "sd1"), _generate(pipe, "sd1"))


# ---------------------------------------------------------------------------
# save_single_file / to_ldm_state_dict details


def test_save_single_file_metadata_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "m.safetensors"
    sd = {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.ones(2)}  # "a" is non-contiguous
    sd["c"] = sd["b"]  # shared storage must not break the write
    le.save_single_file(path, sd, metadata={"modelspec.title": "tiny"})
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"modelspec.title": "tiny"}
        assert torch.equal(f.get_tensor("a"), sd["a"])
        assert torch.equal(f.get_tensor("c"), sd["b"])
    assert os.listdir(path.parent) == ["m.safetensors"]
    assert (os.stat(path).st_mode & 0o777) == 0o644

    with pytest.raises(TypeError):
        le.save_single_file(path, {"x": torch.zeros(1)}, metadata={"steps": 3})

    import safetensors.torch as st

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError):
        le.save_single_file(path, {"x": torch.zeros(1)})
    # the previous file is intact and no temp file is left behind
    assert os.listdir(path.parent) == ["m.safetensors"]
    assert load_file(path).keys() == {"a", "b", "c"}


def test_dtype_cast_and_contiguity():
    pipe = pipe_for("sdxl")
    sd = le.to_ldm_state_dict(pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2, "sdxl", dtype=torch.float16)
    assert sd and all(v.dtype == torch.float16 and v.is_contiguous() and v.device.type == "cpu" for v in sd.values())
    # the fp32 model is untouched
    assert pipe.unet.conv_in.weight.dtype == torch.float32


def test_unknown_parameter_and_family_are_rejected():
    pipe = pipe_for("sd1")
    with pytest.raises(ValueError):
        le.to_ldm_state_dict(pipe.unet, pipe.vae, pipe.text_encoder, family="sd3")
    with pytest.raises(ValueError):
        le.to_ldm_state_dict(pipe.unet, None, pipe.text_encoder, pipe.text_encoder, family="sd1")
    unet = fresh(pipe.unet)
    unet.register_parameter("mystery", torch.nn.Parameter(torch.zeros(1)))
    with pytest.raises(KeyError, match="mystery"):
        le.unet_to_ldm(unet)


def test_real_size_layouts_match_the_original_files():
    """SD1.5 / SDXL sized models (on the meta device) give the original key set sizes and names."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        sd15 = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            attention_head_dim=8,
            cross_attention_dim=768,
        )
        sdxl = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            use_linear_projection=True,
            cross_attention_dim=2048,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
        )
    a, b, v = le.unet_to_ldm(sd15), le.unet_to_ldm(sdxl), le.vae_to_ldm(vae)
    assert (len(a), len(b), len(v)) == (686, 1680, 248)
    assert a["output_blocks.11.0.skip_connection.weight"].shape == (320, 640, 1, 1)
    assert a["input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"].shape == (320, 768)
    for key in ("input_blocks.3.0.op.weight", "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
                "output_blocks.8.2.conv.weight", "middle_block.1.proj_in.weight", "middle_block.2.out_layers.3.weight"):
        assert key in a, key
    assert b["label_emb.0.0.weight"].shape == (1280, 2816)
    assert b["input_blocks.4.1.proj_in.weight"].shape == (640, 640)
    for key in ("output_blocks.2.2.conv.weight", "output_blocks.5.2.conv.weight",
                "input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight",
                "middle_block.1.transformer_blocks.9.ff.net.0.proj.weight"):
        assert key in b, key
    assert v["decoder.up.3.block.0.conv1.weight"].shape == (512, 512, 3, 3)
    assert v["decoder.up.0.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)
    assert v["encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)


# ---------------------------------------------------------------------------
# tiny model builders


def test_tiny_models_deterministic_and_rng_neutral():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = tm.make_tiny_pipeline("sd1", seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    b = pipe_for("sd1")
    c = tm.make_tiny_pipeline("sd1", seed=1)
    assert_same_state(a.unet, b.unet)
    assert_same_state(a.text_encoder, b.text_encoder)
    assert not torch.equal(a.unet.conv_in.weight, c.unet.conv_in.weight)
    with pytest.raises(ValueError):
        tm.make_tiny_pipeline("sd3")


@pytest.mark.parametrize("family", ALL)
def test_tiny_shapes_follow_the_inference_rules(family):
    pipe = pipe_for(family)
    unet, vae, te = pipe.unet, pipe.vae, pipe.text_encoder
    assert list(vae.config.block_out_channels) == [32, 32, 64, 64]
    assert pipe.vae_scale_factor == 8 and unet.config.sample_size == 8
    assert unet.config.norm_num_groups == 32 and vae.config.norm_num_groups == 32
    assert unet.config.in_channels == (9 if family == "sd1-inpaint" else 4)
    assert te.config.vocab_size == 49408 and te.config.max_position_embeddings == 77
    assert te.config.num_attention_heads == te.config.hidden_size // 64
    layout = tm.ldm_family(family)
    if layout == "sd1":
        assert unet.config.attention_head_dim == 8 and not unet.config.use_linear_projection
        assert te.config.hidden_act == "quick_gelu"
    else:
        assert unet.config.use_linear_projection
        for ch, heads in zip(unet.config.block_out_channels, unet.config.attention_head_dim):
            assert ch // heads == 64  # head dim 64
    if layout == "sd2":
        assert te.config.hidden_act == "gelu"
    if layout == "sdxl":
        te2 = pipe.text_encoder_2
        assert te2.config.hidden_act == "gelu" and te2.config.hidden_size != te.config.hidden_size
        assert unet.config.cross_attention_dim == te.config.hidden_size + te2.config.hidden_size
        assert unet.config.projection_class_embeddings_input_dim == (
            6 * unet.config.addition_time_embed_dim + te2.config.projection_dim
        )
