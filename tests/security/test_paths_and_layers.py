"""What the API fuzz found past issue 15's list: a client could name any checkpoint or VAE file on disk by its
path (load it, or probe whether it exists), and a clip skip past the text encoder's layers was a 500."""
from __future__ import annotations

import shutil

import pytest
import requests

GOOD = {"prompt": "ok", "steps": 1, "width": 64, "height": 64, "seed": 1}


@pytest.fixture
def outside(tmp_path, api_models):
    """A real checkpoint and a real VAE file outside every model folder."""
    ckpt = tmp_path / "elsewhere.safetensors"
    shutil.copy(api_models["b"], ckpt)
    vae = tmp_path / "elsewhere.vae.pt"
    vae.write_bytes(b"not read")
    return ckpt, vae


def test_a_checkpoint_path_outside_the_folders_is_not_found(server, outside):
    ckpt, _ = outside
    before = server.engine.active_model().title
    r = requests.post(f"{server.api}/options", json={"sd_model_checkpoint": str(ckpt)}, timeout=60)
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    body = dict(GOOD, override_settings={"sd_model_checkpoint": str(ckpt)})
    r = requests.post(f"{server.api}/txt2img", json=body, timeout=60)
    assert r.status_code == 404
    assert server.engine.active_model().title == before


def test_a_vae_path_outside_the_folders_is_not_found(server, outside):
    _, vae = outside
    r = requests.post(f"{server.api}/options", json={"sd_vae": str(vae)}, timeout=60)
    assert r.status_code == 404 and "sd_vae" in r.json()["detail"]
    assert server.engine.vae_choice == "Automatic"


def test_the_engine_itself_still_takes_a_path(server, outside):
    """--ckpt /path/to/file and engine requests in Python may name a file anywhere: only remote names are limited."""
    ckpt, _ = outside
    assert server.engine.models.resolve(str(ckpt)).path == ckpt.resolve()


def test_clip_skip_past_the_text_encoder_is_a_422(server):
    body = dict(GOOD, override_settings={"CLIP_stop_at_last_layers": 12})
    r = requests.post(f"{server.api}/txt2img", json=body, timeout=60)
    assert r.status_code == 422 and "clip_skip 12" in r.json()["detail"] and "at most" in r.json()["detail"]
    assert requests.post(f"{server.api}/txt2img", json=GOOD, timeout=60).status_code == 200
