"""VAE selection on the tiny models: swap without a checkpoint reload, None restores, layouts, Automatic sibling."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from webui.engine.checkpoints.ldm_export import vae_to_ldm
from webui.engine.requests import GenerationRequest, RequestError


@pytest.fixture(scope="module")
def other_vae():
    from tests.fixtures.tiny_models import make_tiny_pipeline

    return make_tiny_pipeline("sd1", seed=5).vae


@pytest.fixture
def vae_dir(data_dir, other_vae):
    d = data_dir / "models" / "VAE"
    d.mkdir(parents=True, exist_ok=True)
    ldm = {k: v.contiguous() for k, v in vae_to_ldm(other_vae).items()}
    save_file({"first_stage_model." + k: v for k, v in ldm.items()}, str(d / "ldm-prefixed.safetensors"))
    save_file({k: v.contiguous() for k, v in other_vae.state_dict().items()}, str(d / "diffusers-layout.safetensors"))
    torch.save({"state_dict": ldm}, str(d / "old-style.vae.pt"))
    return d


def pixels(engine, prompt="a cat", seed=3, **kw):
    r = engine.generate(GenerationRequest(prompt=prompt, seed=seed, steps=2, save_images=False, **kw))
    return np.asarray(r.images[0]).astype(np.int16), r


def last_line(r):
    return r.infotexts[0].splitlines()[-1]


def test_swap_changes_pixels_none_restores_without_reloading(engine, vae_dir):
    own, r0 = pixels(engine)
    assert "VAE" not in last_line(r0)
    loads = engine.models.loads
    assert [v.as_api()["model_name"] for v in engine.list_vaes()] == [
        "diffusers-layout.safetensors", "ldm-prefixed.safetensors", "old-style.vae.pt"]
    assert engine.select_vae("ldm-prefixed.safetensors") == "ldm-prefixed.safetensors"
    swapped, r = pixels(engine)
    assert np.abs(swapped - own).mean() > 2
    sha = engine.hashes.sha256(vae_dir / "ldm-prefixed.safetensors")
    assert f"VAE hash: {sha[:10]}, VAE: ldm-prefixed.safetensors" in last_line(r)
    model = engine.models.active
    assert model.components["vae"] is not model.own_vae
    assert engine.models.loads == loads  # the checkpoint was not read again
    engine.select_vae("None")
    back, r = pixels(engine)
    assert np.array_equal(back, own) and "VAE" not in last_line(r)
    assert model.components["vae"] is model.own_vae


def test_layouts_give_the_same_vae(engine, vae_dir):
    results = []
    for name in ("ldm-prefixed", "diffusers-layout.safetensors", "old-style.vae.pt"):  # with or without extension
        engine.select_vae(name)
        results.append(pixels(engine)[0])
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


def test_per_job_override_settings(engine, vae_dir):
    own, _ = pixels(engine)
    swapped, r = pixels(engine, override_settings={"sd_vae": "diffusers-layout.safetensors"})
    assert not np.array_equal(own, swapped) and "VAE: diffusers-layout.safetensors" in last_line(r)
    again, r = pixels(engine)  # the engine's choice (Automatic) again
    assert np.array_equal(again, own)
    with pytest.raises(RequestError, match=r"VAE 'diffusers-layot' not found; did you mean: diffusers-layout"):
        engine.submit(GenerationRequest(prompt="x", override_settings={"sd_vae": "diffusers-layot"}))
    with pytest.raises(RequestError, match="not found"):
        engine.select_vae("nope.safetensors")


def test_automatic_uses_the_file_beside_the_checkpoint(engine, data_dir, other_vae):
    own, _ = pixels(engine)
    ckpt = Path(engine.models.active.path)
    beside = ckpt.with_name(ckpt.stem + ".vae.safetensors")
    save_file({k: v.contiguous() for k, v in vae_to_ldm(other_vae).items()}, str(beside))
    auto, r = pixels(engine)
    assert not np.array_equal(auto, own) and f"VAE: {beside.name}" in last_line(r)
    assert all(".vae." not in c.name for c in engine.list_checkpoints(refresh=True))
    engine.select_vae("None")
    assert np.array_equal(pixels(engine)[0], own)


def test_a_vae_that_does_not_fit_is_an_error(engine, vae_dir):
    save_file({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(vae_dir / "broken.safetensors"))
    with pytest.raises(RequestError, match="VAE broken.safetensors does not fit this model"):
        pixels(engine, override_settings={"sd_vae": "broken.safetensors"})
    assert engine.models.active.components["vae"] is engine.models.active.own_vae
