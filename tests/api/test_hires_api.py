"""Hires fix and tiling through the A1111 API: A1111's own requests (enable_hr, tiling) get 200, the old
firstphase fields still work, a pasted infotext turns hires fix on, and the latent modes are listed."""
from __future__ import annotations

import json

import requests

from tests.api.helpers import decode, infotext_of

SIMPLE = {"prompt": "example prompt", "negative_prompt": "example negative prompt", "seed": 1, "steps": 3,
          "width": 64, "height": 64, "cfg_scale": 7, "sampler_name": "Euler a"}


def post(server, body):
    return requests.post(f"{server.api}/txt2img", json=body, timeout=120)


def test_a1111_enable_hr_request(server):
    r = post(server, dict(SIMPLE, enable_hr=True))  # A1111's test_txt2img_with_enable_hr_performed
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0])
    assert image.size == (128, 128)
    info = infotext_of(image)
    assert info["Hires upscaler"] == "Latent" and info["Hires upscale"] == "2.0" and info["Size-1"] == "64"
    assert json.loads(r.json()["info"])["extra_generation_params"]["Hires upscaler"] == "Latent"


def test_a1111_tiling_request(server):
    r = post(server, dict(SIMPLE, tiling=True))  # A1111's test_txt2img_with_tiling_performed
    assert r.status_code == 200, r.text
    assert infotext_of(decode(r.json()["images"][0]))["Tiling"] == "True"


def test_old_firstphase_fields_name_the_first_pass(server):
    r = post(server, dict(SIMPLE, enable_hr=True, width=96, height=96, firstphase_width=64, firstphase_height=64,
                          hr_upscaler="Nearest", denoising_strength=0.4))
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0])
    info = infotext_of(image)
    assert image.size == (96, 96) and info["Size-1"] == "64" and info["Hires upscaler"] == "Nearest"
    assert info["Denoising strength"] == "0.4"


def test_pasted_infotext_turns_hires_on(server):
    text = "a cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64, Denoising strength: 0.5, " \
           "Hires upscale: 1.5, Hires upscaler: Latent (nearest)"
    r = post(server, {"infotext": text})
    assert r.status_code == 200, r.text
    image = decode(r.json()["images"][0])
    assert image.size == (96, 96) and infotext_of(image)["Hires upscaler"] == "Latent (nearest)"


def test_bad_hires_fields_are_4xx(server):
    r = post(server, dict(SIMPLE, enable_hr=True, hr_upscaler="R-ESRGAN 9x"))
    assert r.status_code == 422 and "hr_upscaler" in r.json()["detail"]
    r = post(server, dict(SIMPLE, enable_hr=True, hr_scale=100))
    assert r.status_code == 422 and "hr_scale" in r.json()["detail"]


def test_latent_upscale_modes(server):
    names = [m["name"] for m in requests.get(f"{server.api}/latent-upscale-modes", timeout=30).json()]
    assert names == ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                     "Latent (nearest)", "Latent (nearest-exact)"]
