"""The built-in model's training command, run end to end on a tiny budget: it writes a checkpoint the engine loads
like any SD1 file, a kohya LoRA and an A1111 embedding, and the same seed gives the same weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from webui.engine.checkpoints.loader import inspect_checkpoint
from webui.engine.requests import GenerationRequest


def train(tmp_path, name, seed=0):
    from webui.training import demo

    out = tmp_path / name
    demo.main(["--seed", str(seed), "--out", str(out / "ckpt/m.safetensors"), "--lora-out", str(out / "lora/l.safetensors"),
               "--embedding-out", str(out / "emb/e.safetensors"), "--work-dir", str(out / "work"),
               "--vae-steps", "2", "--unet-steps", "2", "--refine-steps", "1", "--lora-steps", "1",
               "--embedding-steps", "1", "--cache-size", "32", "--batch", "4"])
    return out


def tensors(path):
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.mark.slow
def test_training_command_writes_loadable_reproducible_files(tmp_path):
    a, b = train(tmp_path, "a"), train(tmp_path, "b")
    spec = inspect_checkpoint(a / "ckpt/m.safetensors")
    assert (spec.family, spec.native_size) == ("sd1", (64, 64))
    ckpt_a, meta = tensors(a / "ckpt/m.safetensors")
    assert set(json.loads(meta["latent_studio.training_seconds"])) == {"vae", "unet"}  # written after the UNet stage
    ckpt_b, _ = tensors(b / "ckpt/m.safetensors")
    assert ckpt_a.keys() == ckpt_b.keys() and all((ckpt_a[k] == ckpt_b[k]).all() for k in ckpt_a)
    lora, lora_meta = tensors(a / "lora/l.safetensors")
    assert {k.split("_")[1] for k in lora} == {"unet", "te"}  # kohya names: lora_unet_*, lora_te_*
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in lora
    assert json.loads(lora_meta["ss_tag_frequency"])["shapes"]["lsinvert"] == 16
    emb, _ = tensors(a / "emb/e.safetensors")
    assert emb["emb_params"].shape == (2, 128)

    from webui.engine.facade import Engine
    from webui.settings import Settings

    eng = Engine(Settings(data_dir=tmp_path / "app", ckpt_dirs=[a / "ckpt"], lora_dirs=[a / "lora"], embeddings_dir=a / "emb"))
    try:
        r = eng.generate(GenerationRequest(prompt="a red circle <lora:l:1>", seed=1, steps=3, save_images=False))
        assert r.images[0].size == (64, 64) and np.asarray(r.images[0]).std() > 0
    finally:
        eng.close()
