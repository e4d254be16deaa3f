"""/ls/v1/inspect: tokens, a run with steps and attention maps, walks; documented in /docs (OpenAPI); bad input is
a 422 that names the field, and the server keeps serving."""
from __future__ import annotations

import base64
import io

import numpy as np
import requests
from PIL import Image

from tests.api.helpers import decode, px
from webui.engine.infotext import parse_infotext

BASE = {"prompt": "a red circle", "steps": 3, "sampler_name": "Euler", "seed": 21, "width": 64, "height": 64}


def url(server, path):
    return f"{server.url}/ls/v1/inspect/{path}"


def test_tokens_show_chunks_weights_and_break(server):
    r = requests.post(url(server, "tokens"), json={"prompt": "a (red:1.2) circle BREAK blue"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["chunks"]) == 2 and body["chunks"][0]["ended_by_break"] is True
    first = body["chunks"][0]["tokens"]
    assert len(first) == 77 and first[0]["kind"] == "bos" and first[4]["kind"] == "eos" and first[5]["kind"] == "pad"
    assert [t["word"] for t in first[1:4]] == ["a", "red", "circle"] and first[2]["weight"] == 1.2
    assert body["chunks"][1]["tokens"][1]["index"] == 78


def test_run_returns_steps_attention_and_a_walk(server):
    r = requests.post(url(server, "run"), json={**BASE, "walk_to_seed": 22, "walk_frames": 3,
                                                "attention_steps": [1, 2]}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert parse_infotext(body["infotext"])["Seed"] == "21"
    assert [s["step"] for s in body["steps"]] == [1, 2, 3] and body["steps"][-1]["x0_distance_to_final"] == 0
    assert decode(body["steps"][0]["x0"]).size == (64, 64)
    assert [a["token"]["word"] for a in body["attention"]] == ["a", "red", "circle"]
    heat = np.array(body["attention"][2]["map"])
    assert heat.shape == (8, 8) and (heat > 0).all()
    assert body["attention_info"]["steps"] == [1, 2]
    assert decode(body["attention"][0]["overlay"]).size == (64, 64)
    frames = body["walk"]["frames"]
    assert [f["seed"] for f in frames] == [21, 21, 22]
    assert np.array_equal(px(decode(frames[0]["image"])), px(decode(body["image"])))
    anim = Image.open(io.BytesIO(base64.b64decode(body["walk"]["animation"])))
    assert anim.format == "WEBP" and anim.n_frames == 4
    assert body["saved"] == {}  # save_images off by default


def test_walk_alone_ends_at_the_plain_generation(server):
    r = requests.post(url(server, "walk"), json={**BASE, "walk_to_prompt": "a blue square", "walk_to_seed": 30,
                                                 "walk_frames": 2}, timeout=120)
    assert r.status_code == 200, r.text
    last = r.json()["frames"][-1]
    plain = requests.post(f"{server.api}/txt2img", json={**BASE, "prompt": "a blue square", "seed": 30},
                          timeout=60).json()["images"][0]
    assert np.array_equal(px(decode(last["image"])), px(decode(plain)))


def test_bad_input_is_a_422_naming_it(server):
    r = requests.post(url(server, "run"), json={**BASE, "attention_layers": ["sideways"]}, timeout=60)
    assert r.status_code == 422 and "attention_layers" in r.text
    r = requests.post(url(server, "walk"), json=BASE, timeout=60)
    assert r.status_code == 422 and "walk_to_seed" in r.text
    r = requests.post(url(server, "run"), json={**BASE, "sampler_name": "Bogus"}, timeout=60)
    assert r.status_code == 404 and "Bogus" in r.text
    assert requests.post(url(server, "tokens"), json={"prompt": "ok"}, timeout=60).status_code == 200


def test_routes_are_documented(server):
    spec = requests.get(f"{server.url}/openapi.json", timeout=60).json()
    for path in ("tokens", "run", "walk"):
        op = spec["paths"][f"/ls/v1/inspect/{path}"]["post"]
        assert op["tags"] == ["inspect"] and "200" in op["responses"]
    assert "InspectResponse" in spec["components"]["schemas"]
