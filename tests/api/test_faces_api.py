"""Face restoration through the A1111 API, with face models installed in the server's models/GFPGAN and
models/Codeformer: A1111's own restore_faces request gets 200 and says so in its info and infotext, /face-restorers
lists the models, Extras restores the face of a real photo, the options set the model, and a pasted infotext's
"Face restoration" turns it on. Without models (the shared server's usual state) restore_faces is a 422 (see
test_errors.py)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import requests

from tests.api.helpers import b64png, decode, infotext_of
from tests.fixtures.face_models import face_photo, link_face_models

SIMPLE = {"prompt": "example prompt", "negative_prompt": "example negative prompt", "seed": 1, "steps": 3,
          "width": 64, "height": 64, "cfg_scale": 7, "sampler_name": "Euler a"}

pytestmark = pytest.mark.slow


@pytest.fixture
def installed(server, face_models):
    models = server.data_dir / "models"
    link_face_models(face_models, models)
    server.engine.face_restorers(refresh=True)
    yield server
    for folder in ("GFPGAN", "Codeformer"):
        shutil.rmtree(models / folder, ignore_errors=True)
    server.engine.face_restorers(refresh=True)
    server.engine.update_settings({"face_restoration_model": "CodeFormer", "code_former_weight": 0.5})


def test_a1111_restore_faces_request(installed):
    r = requests.post(f"{installed.api}/txt2img", json=dict(SIMPLE, restore_faces=True), timeout=120)
    assert r.status_code == 200, r.text  # A1111's test_txt2img_with_restore_faces_performed
    info = json.loads(r.json()["info"])
    assert info["restore_faces"] is True and info["face_restoration_model"] == "CodeFormer"
    assert infotext_of(decode(r.json()["images"][0]))["Face restoration"] == "CodeFormer"


def test_face_restorers_are_listed(installed):
    items = requests.get(f"{installed.api}/face-restorers", timeout=30).json()
    assert [i["name"] for i in items] == ["CodeFormer", "GFPGAN", "RestoreFormer"]
    assert items[0]["cmd_dir"] == str(installed.data_dir / "models" / "Codeformer")


def test_extras_restores_the_face_of_a_photo(installed):
    photo = face_photo()
    r = requests.post(f"{installed.api}/extra-single-image", timeout=300,
                      json={"image": b64png(photo), "gfpgan_visibility": 1, "upscaler_1": "None"})
    assert r.status_code == 200, r.text
    out = np.asarray(decode(r.json()["image"]).convert("RGB"), dtype=int)
    before = np.asarray(photo, dtype=int)
    assert np.array_equal(out[420:], before[420:]) and np.abs(out[67:160, 177:270] - before[67:160, 177:270]).mean() > 10
    assert "GFPGAN visibility: 1" in r.json()["html_info"]


def test_options_choose_the_model_and_refuse_unknown_ones(installed):
    r = requests.post(f"{installed.api}/options", json={"face_restoration_model": "GFPGAN",
                                                        "code_former_weight": 0.2}, timeout=30)
    assert r.status_code == 200, r.text
    options = requests.get(f"{installed.api}/options", timeout=30).json()
    assert options["face_restoration_model"] == "GFPGAN" and options["code_former_weight"] == 0.2
    r = requests.post(f"{installed.api}/options", json={"face_restoration_model": "FaceFixer"}, timeout=30)
    assert r.status_code == 422 and "CodeFormer, GFPGAN, RestoreFormer" in r.text
    body = dict(SIMPLE, restore_faces=True, override_settings={"face_restoration_model": "RestoreFormer"})
    r = requests.post(f"{installed.api}/txt2img", json=body, timeout=120)
    assert r.status_code == 200 and json.loads(r.json()["info"])["face_restoration_model"] == "RestoreFormer"


def test_a_pasted_infotext_turns_face_restoration_on(installed):
    text = "a portrait\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 4, Size: 64x64, Face restoration: GFPGAN"
    r = requests.post(f"{installed.api}/txt2img", json={"infotext": text}, timeout=120)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["restore_faces"] is True
