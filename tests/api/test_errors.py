"""Bad input over raw HTTP: every case gets a 4xx with a message that names the problem, nothing is queued, the
server keeps serving and nothing already saved is lost."""
from __future__ import annotations

import base64
import struct
import zlib

import pytest
import requests

from tests.api.helpers import b64png, info_of, pattern_image, saved_pngs

GOOD = {"prompt": "ok", "steps": 2, "width": 64, "height": 64, "seed": 1}
IMG = b64png(pattern_image())


def huge_png(width: int = 30000, height: int = 30000) -> str:
    """A tiny PNG file whose header claims a huge picture."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


def post(server, path, body, **kw):
    return requests.post(f"{server.api}/{path}", json=body, timeout=60, **kw)


CASES = [
    # (endpoint, body changes, status, words in the message)
    ("txt2img", {"steps": -5}, 422, ["steps", "-5"]),
    ("txt2img", {"steps": 0}, 422, ["steps"]),
    ("txt2img", {"steps": "many"}, 422, ["steps", "integer"]),
    ("txt2img", {"width": 100000}, 422, ["width", "2048"]),
    ("txt2img", {"height": 16}, 422, ["height", "64"]),
    ("txt2img", {"batch_size": 100}, 422, ["batch_size"]),
    ("txt2img", {"cfg_scale": -1}, 422, ["cfg_scale"]),
    ("txt2img", {"seed": -7}, 422, ["seed", "-7"]),
    ("txt2img", {"sampler_name": "Warp Drive"}, 404, ["Warp Drive", "Valid samplers", "Euler a"]),
    ("txt2img", {"sampler_name": None, "sampler_index": "Nope"}, 404, ["Nope", "Valid samplers"]),
    ("txt2img", {"scheduler": "sideways"}, 404, ["sideways", "schedule"]),
    ("txt2img", {"override_settings": {"sd_model_checkpoint": "no-such-model"}}, 404,
     ["no-such-model", "not found", "tiny-a"]),
    ("txt2img", {"override_settings": {"some_unknown_option": 1}}, 422, ["some_unknown_option"]),
    ("txt2img", {"override_settings": {"sd_vae": "fancy.vae.pt"}}, 404, ["sd_vae", "fancy.vae.pt", "Automatic"]),
    ("txt2img", {"enable_hr": True, "hr_upscaler": "Nope"}, 422, ["hr_upscaler", "Nope", "Latent"]),  # supported now
    ("txt2img", {"restore_faces": True}, 422, ["restore_faces"]),
    ("txt2img", {"tiling": "sideways"}, 422, ["tiling"]),  # tiling itself is supported now
    ("txt2img", {"script_name": "loopback"}, 422, ["script_name", "loopback", "x/y/z plot"]),
    ("txt2img", {"script_name": "sd upscale"}, 422, ["script_name", "sd upscale"]),  # an img2img script
    ("txt2img", {"script_name": "x/y/z plot"}, 422, ["X/Y/Z plot", "no X values"]),
    ("txt2img", {"script_name": "x/y/z plot", "script_args": [13, "0, 1"]}, 422, ["Sigma Churn"]),
    ("txt2img", {"script_args": [1, 2]}, 422, ["script_args"]),
    ("txt2img", {"alwayson_scripts": {"ControlNet": {"args": [{"weight": 5}]}}}, 422, ["ControlNet unit 0", "weight"]),
    ("txt2img", {"alwayson_scripts": {"ADetailer": {"args": [True, {"ad_model": "face_yolov8n.pt"}]}}}, 422,
     ["ADetailer", "not installed"]),
    ("txt2img", {"s_churn": 0.5}, 422, ["s_churn"]),
    ("txt2img", {"seed_resize_from_w": 512}, 422, ["seed_resize_from_w"]),
    ("txt2img", {"refiner_checkpoint": "tiny-b"}, 422, ["refiner_checkpoint"]),
    ("txt2img", {"prompt": "a cat <lora:nope:0.8>"}, 404, ["LoRA", "nope"]),
    ("txt2img", {"prompt": "a cat <hypernet:old:1>"}, 422, ["hypernet"]),
    ("img2img", {}, 422, ["init_images"]),
    ("img2img", {"init_images": []}, 422, ["init_images"]),
    ("img2img", {"init_images": ["!!! not base64 !!!"]}, 422, ["init_images[0]", "base64"]),
    ("img2img", {"init_images": [base64.b64encode(b"hello, not an image").decode()]}, 422,
     ["init_images[0]", "not a readable image"]),
    ("img2img", {"init_images": ["data:image/png;base64,@@@@"]}, 422, ["init_images[0]", "base64"]),
    ("img2img", {"init_images": ["data:image/png,rawbytes"]}, 422, ["init_images[0]", "base64"]),
    ("img2img", {"init_images": ["https://example.com/cat.png"]}, 422, ["init_images[0]", "URL"]),
    ("img2img", {"init_images": [IMG, IMG[: len(IMG) // 2]]}, 422, ["init_images[1]"]),
    ("img2img", {"init_images": [huge_png()]}, 422, ["init_images[0]", "too large"]),
    ("img2img", {"init_images": [IMG], "mask": "garbage!"}, 422, ["mask", "base64"]),
    ("img2img", {"init_images": [IMG], "denoising_strength": 1.5}, 422, ["denoising_strength"]),
    ("img2img", {"init_images": [IMG], "resize_mode": 3}, 422, ["resize_mode", "3"]),
    ("img2img", {"init_images": [IMG], "mask": IMG, "inpainting_fill": 7}, 422, ["inpainting_fill"]),  # 0-3 exist
    ("img2img", {"init_images": [IMG], "initial_noise_multiplier": 0.5}, 422, ["initial_noise_multiplier"]),
    ("png-info", {"image": "definitely not an image"}, 422, ["image"]),
    ("png-info", {}, 422, ["image"]),
    ("extra-single-image", {"image": IMG, "upscaler_1": "R-ESRGAN 4x+"}, 404, ["R-ESRGAN 4x+", "Lanczos"]),
    ("extra-single-image", {"image": IMG, "gfpgan_visibility": 0.5}, 422, ["gfpgan_visibility"]),
    ("extra-single-image", {"image": IMG, "upscaler_1": "Lanczos", "upscaling_resize": 500}, 422, ["upscaled size"]),
    ("extra-single-image", {"image": "x"}, 422, ["image"]),
    ("extra-batch-images", {"imageList": [{"data": IMG, "name": "a"}, {"data": "??", "name": "b"}]}, 422,
     ["imageList[1]"]),
]


@pytest.mark.parametrize("path, changes, status, words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_a_clear_4xx(server, path, changes, status, words):
    body = dict(GOOD) if path in ("txt2img", "img2img") else {}
    body.update(changes)
    r = post(server, path, body)
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text
    err = r.json()
    assert set(err) >= {"error", "detail"}
    text = str(err["detail"])
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    assert server.engine.queue.waiting == 0


def test_server_keeps_working_and_saved_images_survive(server):
    first = post(server, "txt2img", dict(GOOD, save_images=True))
    assert first.status_code == 200
    saved = saved_pngs(server.data_dir)
    assert saved
    for path, changes, _, _ in CASES[:12]:
        post(server, path, dict(GOOD, **changes))
    requests.post(f"{server.api}/txt2img", data=b"{not json", headers={"content-type": "application/json"}, timeout=10)
    again = post(server, "txt2img", dict(GOOD, seed=2))
    assert again.status_code == 200 and info_of(again.json())["seed"] == 2
    assert saved <= saved_pngs(server.data_dir) and all(p.stat().st_size > 0 for p in saved)


def test_malformed_json_is_a_422(server):
    r = requests.post(f"{server.api}/txt2img", data=b"{not json", headers={"content-type": "application/json"},
                      timeout=10)
    assert r.status_code == 422 and "JSON" in r.text
    r = requests.post(f"{server.api}/txt2img", json=[1, 2, 3], timeout=10)
    assert r.status_code == 422


def test_options_errors_name_the_problem_and_change_nothing(server):
    before = server.engine.models.active.title
    r = post(server, "options", {"sd_model_checkpoint": "missing.safetensors [0123456789]"})
    assert r.status_code == 404 and "missing.safetensors [0123456789]" in r.json()["detail"]
    assert server.engine.models.active.title == before
    r = post(server, "options", {"CLIP_stop_at_last_layers": 99, "send_seed": False})
    assert r.status_code == 422 and "CLIP_stop_at_last_layers" in r.json()["detail"]
    assert requests.get(f"{server.api}/options", timeout=10).json()["send_seed"] is True  # nothing changed
    r = post(server, "options", {"samples_format": "jpg"})
    assert r.status_code == 422 and "samples_format" in r.json()["detail"]
    # sending back what GET answered is always fine
    current = requests.get(f"{server.api}/options", timeout=10).json()
    assert post(server, "options", current).status_code == 200


def test_broken_checkpoint_is_a_422_and_the_model_stays(server):
    broken = server.data_dir / "models" / "Stable-diffusion" / "broken.safetensors"
    broken.write_bytes(b"this is not a safetensors file at all" * 10)
    try:
        assert requests.post(f"{server.api}/refresh-checkpoints", timeout=30).status_code == 200
        title = next(m["title"] for m in requests.get(f"{server.api}/sd-models", timeout=10).json()
                     if m["model_name"] == "broken")
        before = server.engine.models.active.title
        r = post(server, "options", {"sd_model_checkpoint": title})
        assert r.status_code == 422 and "broken.safetensors" in r.json()["detail"]
        assert server.engine.models.active.title == before
        r = post(server, "txt2img", dict(GOOD, override_settings={"sd_model_checkpoint": title}))
        assert r.status_code == 422 and "broken.safetensors" in r.json()["detail"]
        assert post(server, "txt2img", GOOD).status_code == 200
    finally:
        broken.unlink()
        requests.post(f"{server.api}/refresh-checkpoints", timeout=30)


def test_unknown_lora_is_a_404_with_close_matches(server):
    folder = server.engine.settings.lora_search_dirs[0]
    folder.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    import torch
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32, 1, 1)},
              str(folder / "detail_tweaker.safetensors"))
    try:
        r = post(server, "txt2img", dict(GOOD, prompt="a cat <lora:detail_tweakr:0.8>"))
        assert r.status_code == 404 and "'detail_tweakr'" in r.json()["detail"]
        assert "detail_tweaker" in r.json()["detail"]  # the close match is suggested
    finally:
        (folder / "detail_tweaker.safetensors").unlink()


def test_odd_sizes_round_down_to_multiples_of_8_like_a1111(server):
    r = post(server, "txt2img", dict(GOOD, width=100, height=70))
    assert r.status_code == 200
    info = info_of(r.json())
    assert (info["width"], info["height"]) == (96, 64)


def test_unsupported_fields_at_their_off_values_are_accepted(server):
    body = dict(GOOD, enable_hr=False, restore_faces=False, tiling=False, script_name="", script_args=[],
                alwayson_scripts={}, s_churn=0, s_tmax=0, s_tmin=0, s_noise=1, seed_resize_from_h=0,
                seed_resize_from_w=-1, refiner_checkpoint="None", hr_upscaler="Latent", firstphase_width=0,
                override_settings={"sd_vae": "Automatic", "samples_format": "png"}, unknown_field_from_a_fork=1)
    r = post(server, "txt2img", body)
    assert r.status_code == 200, r.text
