"""Samplers through the API: every A1111 sampler/schedule pair we have is accepted, the lists show only what works,
and an A1111 sampler we lack is a 404 that names it and what is available."""
from __future__ import annotations

import requests

from tests.api.helpers import info_of
from webui.engine.samplers import sampler_names, schedule_names

GOOD = {"prompt": "ok", "steps": 2, "width": 64, "height": 64, "seed": 1}


def post(server, body):
    return requests.post(f"{server.api}/txt2img", json={**GOOD, **body}, timeout=60)


def test_euler_a_with_karras_is_accepted_and_written_as_a1111(server):
    r = post(server, {"sampler_name": "Euler a", "scheduler": "Karras"})
    assert r.status_code == 200, r.text
    info = info_of(r.json())
    assert info["sampler_name"] == "Euler a"
    assert "Sampler: Euler a, Schedule type: Karras," in info["infotexts"][0]
    old = post(server, {"sampler_name": "DPM++ 2M SDE Heun Exponential"})
    assert old.status_code == 200 and "Sampler: DPM++ 2M SDE Heun, Schedule type: Exponential," in \
        info_of(old.json())["infotexts"][0]


def test_a_sampler_we_lack_is_a_404_naming_it_and_the_available_ones(server):
    for name in ("Restart", "DPM adaptive"):
        r = post(server, {"sampler_name": name, "scheduler": "Karras"})
        assert r.status_code == 404
        detail = r.json()["detail"]
        assert f"'{name}' is not available in Latent Studio" in detail and "available: DPM++ 2M, " in detail
    assert server.engine.queue.waiting == 0


def test_lists_show_what_works(server):
    items = requests.get(f"{server.api}/samplers", timeout=10).json()
    assert [s["name"] for s in items] == sampler_names()
    assert not {"Restart", "DPM fast", "DPM adaptive", "DDIM CFG++"} & {s["name"] for s in items}
    by_name = {s["name"]: s for s in items}
    assert by_name["DPM++ 2M"] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    assert by_name["Euler a"]["options"] == {}
    assert by_name["DPM++ 2M SDE Heun"]["options"] == {"scheduler": "exponential"}
    scheds = requests.get(f"{server.api}/schedulers", timeout=10).json()
    assert [s["label"] for s in scheds] == schedule_names() and len(scheds) == 12
    sgm = next(s for s in scheds if s["name"] == "sgm_uniform")
    assert sgm == {"name": "sgm_uniform", "label": "SGM Uniform", "aliases": ["SGMUniform"], "default_rho": -1.0,
                   "need_inner_model": True}
