"""Checkpoint registry, family detection, safe loading, failed loads, RAM cache."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from webui.engine.checkpoints.loader import CheckpointLoadError, inspect_checkpoint
from webui.engine.checkpoints.registry import CheckpointRegistry, HashCache, sha256_of
from webui.engine.requests import GenerationRequest


def req(**kw):
    return GenerationRequest(**{"prompt": "x", "steps": 2, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler", **kw})


@pytest.mark.parametrize("key, family, inpaint, prediction", [
    ("sd1", "sd1", False, "epsilon"),
    ("sd1-ckpt", "sd1", False, "epsilon"),
    ("sd1-folder", "sd1", False, "epsilon"),
    ("sd1-inpaint", "sd1", True, "epsilon"),
    ("sd2", "sd2", False, "epsilon"),
    ("sd2-v", "sd2", False, "v_prediction"),
    ("sdxl", "sdxl", False, "epsilon"),
])
def test_family_detection(tiny_files, key, family, inpaint, prediction):
    spec = inspect_checkpoint(tiny_files[key])
    assert (spec.family, spec.inpaint, spec.prediction_type) == (family, inpaint, prediction)


def test_inferred_config_matches_the_tiny_model(tiny_files):
    spec = inspect_checkpoint(tiny_files["sdxl"])
    unet = spec.configs["unet"]
    assert unet["block_out_channels"] == [64, 128] and unet["layers_per_block"] == 2
    assert unet["down_block_types"] == ["DownBlock2D", "CrossAttnDownBlock2D"]
    assert unet["transformer_layers_per_block"] == [1, 2]
    assert unet["addition_time_embed_dim"] == 8 and unet["cross_attention_dim"] == 192
    assert spec.configs["text_encoder_2"]["hidden_size"] == 128


@pytest.mark.parametrize("key", ["sd1", "sd1-ckpt", "sd1-folder", "sd2", "sd2-v", "sdxl", "sd1-inpaint"])
def test_every_layout_and_family_generates_offline(engine, tiny_files, key):
    model = engine.models.select(str(tiny_files[key]))
    r = engine.generate(req(checkpoint=str(tiny_files[key])))
    img = np.asarray(r.images[0], dtype=np.float32)
    assert r.images[0].size == (64, 64) and np.isfinite(img).all() and img.std() > 0.5
    assert model.scheduler_config["prediction_type"] == ("v_prediction" if key == "sd2-v" else "epsilon")


def test_titles_use_sha256_shorthash(engine, tiny_files):
    titles = {c.name: c.title for c in engine.list_checkpoints()}
    digest = sha256_of(tiny_files["sd1"])
    assert titles["tiny-sd1.safetensors"] == f"tiny-sd1.safetensors [{digest[:10]}]"
    assert engine.checkpoints.find(digest[:10]).name == "tiny-sd1.safetensors"
    assert engine.checkpoints.find("tiny-sd1").name == "tiny-sd1.safetensors"


def test_hash_cache_hit_skips_rehashing(tmp_path, tiny_files):
    folder = tmp_path / "ck"
    folder.mkdir()
    shutil.copy(tiny_files["sd1"], folder / "a.safetensors")
    first = HashCache(tmp_path / "hashes.json")
    CheckpointRegistry([folder], first).refresh()
    assert first.computed == 1
    second = HashCache(tmp_path / "hashes.json")
    items = CheckpointRegistry([folder], second).refresh()
    assert second.computed == 0 and second.hits == 1 and items[0].sha256 == sha256_of(folder / "a.safetensors")
    (folder / "a.safetensors").write_bytes((folder / "a.safetensors").read_bytes() + b" ")  # size changes
    third = HashCache(tmp_path / "hashes.json")
    CheckpointRegistry([folder], third).refresh()
    assert third.computed == 1


def test_vae_files_and_other_suffixes_are_not_checkpoints(tmp_path, tiny_files):
    (tmp_path / "sub").mkdir()
    shutil.copy(tiny_files["sd1"], tmp_path / "sub" / "m.safetensors")
    (tmp_path / "m.vae.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    names = [i.name for i in CheckpointRegistry([tmp_path], HashCache(tmp_path / "h.json")).refresh()]
    assert names == ["sub/m.safetensors"]


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(engine, data_dir, tmp_path):
    target = tmp_path / "pwned.txt"
    path = data_dir / "models" / "Stable-diffusion" / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Evil(str(target))}, path)
    engine.load_checkpoint("tiny-sd1")
    with pytest.raises(CheckpointLoadError, match=r"evil\.ckpt.*refused"):
        engine.load_checkpoint("evil")
    assert not target.exists()
    assert engine.models.active.title.startswith("tiny-sd1.safetensors")
    assert len(engine.generate(req()).images) == 1


@pytest.mark.parametrize("name, content, message", [
    ("truncated.safetensors", "truncate", "corrupt or truncated"),
    ("garbage.safetensors", b"\x00" * 64, "corrupt or truncated"),
    ("garbage.ckpt", b"not a zip or pickle at all", "corrupt or truncated"),
    ("lora-like.safetensors", "lora", "LoRA"),
    ("unet-only.safetensors", "unknown", "unknown model"),
])
def test_failed_load_names_the_file_and_keeps_previous_model(engine, data_dir, tiny_files, name, content, message):
    from safetensors.torch import save_file

    path = data_dir / "models" / "Stable-diffusion" / name
    if content == "truncate":
        raw = tiny_files["sd1"].read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif content == "lora":
        save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 4)}, path)
    elif content == "unknown":
        save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, path)
    else:
        path.write_bytes(content)
    before = engine.generate(req()).images[0]
    engine.checkpoints.refresh()
    with pytest.raises(CheckpointLoadError) as info:
        engine.load_checkpoint(name)
    assert name in str(info.value) and message in str(info.value)
    assert engine.models.active.title.startswith("tiny-sd1.safetensors")
    after = engine.generate(req()).images[0]
    assert np.array_equal(np.asarray(before), np.asarray(after))


def test_cached_switch_does_not_reread_and_evicts_least_recent(engine):
    engine.load_checkpoint("tiny-sd1")
    engine.load_checkpoint("tiny-sd1-b")
    assert engine.models.loads == 2
    img_a = engine.generate(req(checkpoint="tiny-sd1")).images[0]
    assert engine.models.loads == 2  # came from RAM
    engine.load_checkpoint("tiny-sd1-b")
    engine.load_checkpoint("tiny-sd1-c")  # cache size 2: evicts tiny-sd1 (least recently used)
    assert engine.models.loads == 3
    assert [t.split(" [")[0] for t in engine.models.cached_titles()] == ["tiny-sd1-b.safetensors", "tiny-sd1-c.safetensors"]
    img_a2 = engine.generate(req(checkpoint="tiny-sd1")).images[0]
    assert engine.models.loads == 4
    assert np.array_equal(np.asarray(img_a), np.asarray(img_a2))
    other = engine.generate(req(checkpoint="tiny-sd1-b")).images[0]
    assert not np.array_equal(np.asarray(img_a), np.asarray(other))


def test_pickle_module_refusal_message_is_plain(tmp_path):
    path = tmp_path / "x.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"a": _Evil(str(tmp_path / "boom"))}, f)
    with pytest.raises(CheckpointLoadError, match="x.ckpt"):
        inspect_checkpoint(path)
    assert not (tmp_path / "boom").exists()


def test_wider_unet_conv_kernels_are_read_from_the_weights(tmp_path):
    from diffusers import UNet2DConditionModel

    from tests.fixtures.tiny_models import make_tiny_pipeline, write_single_file

    pipe = make_tiny_pipeline("sd1", seed=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe.unet = UNet2DConditionModel(**dict(pipe.unet.config, conv_in_kernel=7, conv_out_kernel=5)).eval()
    path = write_single_file(pipe, tmp_path / "wide.safetensors", "sd1", {"modelspec.resolution": "64x64"})
    unet = inspect_checkpoint(path).configs["unet"]
    assert (unet["conv_in_kernel"], unet["conv_out_kernel"]) == (7, 5)
    assert "conv_in_kernel" not in inspect_checkpoint(write_single_file(
        make_tiny_pipeline("sd1"), tmp_path / "plain.safetensors", "sd1")).configs["unet"]


TINY_SD1_YAML = """\
model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    scale_factor: 0.2
    {parameterization}
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 8
        in_channels: 4
        out_channels: 4
        model_channels: 32
        attention_resolutions: [1]
        num_res_blocks: 1
        channel_mult: [1, 2]
        num_heads: 2
        use_spatial_transformer: true
        transformer_depth: 1
        context_dim: 64
        legacy: false
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 64
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [1, 1, 2, 2]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
"""


def test_a_sidecar_yaml_config_is_used_for_what_shapes_cannot_tell(engine, data_dir, tiny_files):
    """A1111's `name.yaml` beside `name.safetensors`: here 2 attention heads instead of SD1's 8, v-prediction and
    another VAE scaling factor. The UNet built from it computes exactly what a diffusers UNet with 2 heads and the
    same weights computes."""
    from diffusers import UNet2DConditionModel

    folder = data_dir / "models" / "Stable-diffusion"
    shutil.copy(tiny_files["sd1"], folder / "heads2.safetensors")
    (folder / "heads2.yaml").write_text(TINY_SD1_YAML.format(parameterization='parameterization: "v"'))
    assert inspect_checkpoint(folder / "heads2.safetensors").prediction_type == "v_prediction"
    model = engine.load_checkpoint("heads2")
    unet = model.components["unet"]
    assert unet.config.attention_head_dim == 2 and model.spec.prediction_type == "v_prediction"
    assert model.components["vae"].config.scaling_factor == 0.2
    reference = UNet2DConditionModel.from_config({**dict(unet.config), "attention_head_dim": 2})
    reference.load_state_dict(unet.state_dict())
    eight = UNet2DConditionModel.from_config({**dict(unet.config), "attention_head_dim": 8})
    eight.load_state_dict(unet.state_dict())
    x, t, text = torch.randn(1, 4, 8, 8), torch.tensor([500]), torch.randn(1, 77, 64)
    with torch.no_grad():
        out = unet(x, t, text).sample
        assert torch.allclose(out, reference(x, t, text).sample, atol=1e-5)
        assert not torch.allclose(out, eight(x, t, text).sample, atol=1e-3)  # the heads matter
    (folder / "heads2.yaml").write_text("model: [not, a, mapping")
    with pytest.raises(CheckpointLoadError, match="heads2.yaml"):
        inspect_checkpoint(folder / "heads2.safetensors")
