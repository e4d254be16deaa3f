"""A1111's own HTTP tests (the request shapes of its test/ folder, v1.10: test_txt2img.py, test_img2img.py,
test_extras.py, test_utils.py) against our server, with a face model installed as its restore_faces test needs.
Each asks for 200; here each also checks the answer is what that request asks for."""
from __future__ import annotations

import json
import shutil

import pytest
import requests
from PIL import Image, ImageDraw

from tests.api.helpers import b64png, decode, infotext_of
from tests.fixtures.face_models import link_face_models

SIMPLE_TXT2IMG = {
    "batch_size": 1, "cfg_scale": 7, "denoising_strength": 0, "enable_hr": False, "eta": 0, "firstphase_height": 0,
    "firstphase_width": 0, "height": 64, "n_iter": 1, "negative_prompt": "", "prompt": "example prompt",
    "restore_faces": False, "s_churn": 0, "s_noise": 1, "s_tmax": 0, "s_tmin": 0, "sampler_index": "Euler a",
    "seed": -1, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "steps": 3, "styles": [], "subseed": -1,
    "subseed_strength": 0, "tiling": False, "width": 64,
}
TXT2IMG_CASES = {
    "simple": {},
    "negative_prompt": {"negative_prompt": "example negative prompt"},
    "complex_prompt": {"prompt": "((emphasis)), (emphasis1:1.1), [to:1], [from::2], [from:to:0.3], [alt|alt1]"},
    "not_square": {"height": 128},
    "hrfix": {"enable_hr": True},
    "tiling": {"tiling": True},
    "restore_faces": {"restore_faces": True},
    "sampler_PLMS": {"sampler_index": "PLMS"},
    "sampler_DDIM": {"sampler_index": "DDIM"},
    "sampler_UniPC": {"sampler_index": "UniPC"},
    "multiple_batches": {"n_iter": 2},
    "batch": {"batch_size": 2},
}


def basic_image() -> Image.Image:
    image = Image.new("RGB", (64, 64), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(230, 200, 40))
    return image


def basic_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 20, 44, 44), fill=255)
    return mask


def simple_img2img() -> dict:
    return {
        "batch_size": 1, "cfg_scale": 7, "denoising_strength": 0.75, "eta": 0, "height": 64,
        "include_init_images": False, "init_images": [b64png(basic_image())], "inpaint_full_res": False,
        "inpaint_full_res_padding": 0, "inpainting_fill": 0, "inpainting_mask_invert": False, "mask": None,
        "mask_blur": 4, "n_iter": 1, "negative_prompt": "", "override_settings": {}, "prompt": "example prompt",
        "resize_mode": 0, "restore_faces": False, "s_churn": 0, "s_noise": 1, "s_tmax": 0, "s_tmin": 0,
        "sampler_index": "Euler a", "seed": -1, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "steps": 3,
        "styles": [], "subseed": -1, "subseed_strength": 0, "tiling": False, "width": 64,
    }


@pytest.fixture
def face_model_installed(server, face_models):
    link_face_models(face_models, server.data_dir / "models", kinds=("CodeFormer",))
    server.engine.face_restorers(refresh=True)
    yield
    shutil.rmtree(server.data_dir / "models" / "Codeformer", ignore_errors=True)
    server.engine.face_restorers(refresh=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TXT2IMG_CASES))
def test_txt2img(server, face_model_installed, case):
    body = {**SIMPLE_TXT2IMG, **TXT2IMG_CASES[case]}
    r = requests.post(f"{server.api}/txt2img", json=body, timeout=300)
    assert r.status_code == 200, r.text
    images = [decode(b) for b in r.json()["images"]]
    assert len(images) == body["batch_size"] * body["n_iter"]
    scale = 2 if body["enable_hr"] else 1
    assert images[0].size == (body["width"] * scale, body["height"] * scale)
    info = json.loads(r.json()["info"])
    assert info["sampler_name"] == body["sampler_index"] and info["restore_faces"] is body["restore_faces"]
    if body["tiling"]:
        assert infotext_of(images[0])["Tiling"] == "True"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["simple", "masked", "inverted_mask"])
def test_img2img(server, case):
    body = simple_img2img()
    if case != "simple":
        body.update(mask=b64png(basic_mask()), inpainting_mask_invert=case == "inverted_mask")
    r = requests.post(f"{server.api}/img2img", json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = decode(r.json()["images"][0]).convert("RGB")
    assert out.size == (64, 64)
    if case != "simple":  # outside the (blurred) mask the original stays
        corner = (2, 2) if case == "masked" else (32, 32)
        assert sum(abs(a - b) for a, b in zip(out.getpixel(corner), basic_image().getpixel(corner))) < 12


def test_img2img_sd_upscale(server):
    body = {**simple_img2img(), "script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]}
    r = requests.post(f"{server.api}/img2img", json=body, timeout=300)
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert len(images) == 1 and decode(images[0]).size == (128, 128)  # twice the 64 px init image
    info = infotext_of(decode(images[0]))
    assert info["SD upscale upscaler"] == "Lanczos" and info["SD upscale overlap"] == "8"


def test_extras_simple_upscaling_and_plain_requests(server):
    payload = {"resize_mode": 0, "show_extras_results": True, "gfpgan_visibility": 0, "codeformer_visibility": 0,
               "codeformer_weight": 0, "upscaling_resize": 2, "upscaling_resize_w": 128, "upscaling_resize_h": 128,
               "upscaling_crop": True, "upscaler_1": "Lanczos", "upscaler_2": "None",
               "extras_upscaler_2_visibility": 0, "image": b64png(basic_image())}
    r = requests.post(f"{server.api}/extra-single-image", json=payload, timeout=60)
    assert r.status_code == 200 and decode(r.json()["image"]).size == (128, 128)
    for extra in ({}, {"model": "clip"}):  # A1111's png-info and interrogate tests post these shapes here too
        r = requests.post(f"{server.api}/extra-single-image", json={"image": b64png(basic_image()), **extra},
                          timeout=60)
        assert r.status_code == 200 and decode(r.json()["image"]).size == (64, 64)


def test_options_write(server):
    url = f"{server.api}/options"
    before = requests.get(url, timeout=10).json()["send_seed"]
    assert requests.post(url, json={"send_seed": not before}, timeout=10).status_code == 200
    assert requests.get(url, timeout=10).json()["send_seed"] is (not before)
    assert requests.post(url, json={"send_seed": before}, timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["cmd-flags", "samplers", "upscalers", "sd-models", "hypernetworks",
                                  "face-restorers", "realesrgan-models", "prompt-styles", "embeddings"])
def test_get_api_url(server, path):
    r = requests.get(f"{server.api}/{path}", timeout=30)
    assert r.status_code == 200
    assert isinstance(r.json(), dict if path in ("cmd-flags", "embeddings") else list)
