"""Scripts through the API (script_name + script_args in A1111's argument order), /scripts and /script-info, batch
grids in the answer, and the alwayson_scripts rules."""
from __future__ import annotations

import json

import numpy as np
import requests
from PIL import Image

from tests.api.helpers import b64png, decode, infotext_of, saved_pngs

GEN = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler", "seed": 31}


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(f"{server.api}/{path}", json=body, timeout=300)


def px(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def info_of(r: requests.Response) -> dict:
    return json.loads(r.json()["info"])


def xyz_args(x_type, x_values, y_type=0, y_values="", lone=False) -> list:
    return [x_type, x_values, [], y_type, y_values, [], 0, "", [], True, lone, False, False, False, False, False, 0,
            False]


def test_scripts_and_script_info_list_our_scripts_with_their_arguments(server):
    scripts = requests.get(f"{server.api}/scripts", timeout=30).json()
    assert "x/y/z plot" in scripts["txt2img"] and "sd upscale" not in scripts["txt2img"]
    assert {"sd upscale", "x/y/z plot", "prompt matrix", "prompts from file or textbox"} <= set(scripts["img2img"])
    info = requests.get(f"{server.api}/script-info", timeout=30).json()
    by_key = {(i["name"], i["is_img2img"]): i for i in info}
    xyz = by_key[("x/y/z plot", False)]
    assert xyz["is_alwayson"] is False and len(xyz["args"]) == 18
    assert set(xyz["args"][0]) == {"label", "value", "minimum", "maximum", "step", "choices"}
    assert xyz["args"][0]["label"] == "X type" and xyz["args"][0]["choices"][7] == "Prompt S/R"
    assert xyz["args"][12]["label"] == "Keep -1 for seeds" and xyz["args"][16]["maximum"] == 500
    assert by_key[("x/y/z plot", True)]["args"][0]["choices"][6] == "Image CFG Scale"
    upscale = by_key[("sd upscale", True)]["args"]
    assert [a["label"] for a in upscale[1:]] == ["Tile overlap", "Upscaler", "Scale Factor"]
    assert upscale[2]["choices"][:3] == ["None", "Lanczos", "Nearest"]
    assert [a["label"] for a in by_key[("prompts from file or textbox", False)]["args"]] == \
        ["Iterate seed every line", "Use same random seed for all lines", "Insert prompts at the",
         "List of prompt inputs"]


def test_xyz_plot_through_the_api(server):
    r = post(server, "txt2img", {**GEN, "script_name": "X/Y/Z Plot", "script_args": xyz_args(1, "5, 6", lone=True)})
    assert r.status_code == 200, r.text
    images = [decode(b) for b in r.json()["images"]]
    info = info_of(r)
    assert len(images) == 3 and info["index_of_first_image"] == 1
    assert info["all_seeds"] == [5, 6] and len(info["infotexts"]) == 3
    grid = infotext_of(images[0])
    assert grid["Script"] == "X/Y/Z plot" and grid["X Type"] == "Seed" and grid["X Values"] == "5, 6"
    single = post(server, "txt2img", {**GEN, "seed": 6})
    assert np.array_equal(px(images[2]), px(decode(single.json()["images"][0])))
    left = images[0].width - 128
    assert np.array_equal(px(images[0])[-64:, left + 64:], px(images[2]))


def test_old_sixteen_argument_xyz_requests_work(server):
    old = [4, "1,2", [], 0, "", [], 0, "", [], False, False, False, False, 0, False, False]
    r = post(server, "txt2img", {**GEN, "script_name": "x/y/z plot", "script_args": old})
    assert r.status_code == 200, r.text
    assert decode(r.json()["images"][0]).size == (128, 64)  # no legend: two cells side by side


def test_prompt_matrix_and_prompts_from_file_through_the_api(server):
    r = post(server, "txt2img", {**GEN, "prompt": "a circle|red", "script_name": "prompt matrix",
                                 "script_args": [False, False, "positive", "comma", 0]})
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 3 and info_of(r)["all_prompts"] == ["a circle", "a circle, red"]
    r = post(server, "txt2img", {**GEN, "prompt": "", "script_name": "prompts from file or textbox",
                                 "script_args": [False, False, "start", 'one\n--prompt two --seed 8 --steps 3']})
    assert r.status_code == 200, r.text
    assert info_of(r)["all_prompts"] == ["one", "two"] and info_of(r)["all_seeds"] == [31, 8]


def test_img2img_scripts_take_the_init_image(server):
    init = Image.new("RGB", (64, 64), (30, 160, 60))
    body = {**GEN, "init_images": [b64png(init)], "denoising_strength": 0.5, "script_name": "SD upscale",
            "script_args": ["", 16, 1, 1.5]}  # the upscaler by index: 1 is Lanczos
    r = post(server, "img2img", body)
    assert r.status_code == 200, r.text
    assert decode(r.json()["images"][0]).size == (96, 96)
    assert infotext_of(decode(r.json()["images"][0]))["SD upscale upscaler"] == "Lanczos"


def test_bad_script_arguments_are_a_422_naming_them(server):
    r = post(server, "txt2img", {**GEN, "script_name": "x/y/z plot", "script_args": xyz_args(4, "1-100000")})
    assert r.status_code == 422 and "at most" in r.text
    r = post(server, "img2img", {**GEN, "init_images": [b64png(Image.new("RGB", (64, 64)))],
                                 "script_name": "sd upscale", "script_args": ["", 8, "R-ESRGAN 4x+", 2]})
    assert r.status_code == 404 and "R-ESRGAN 4x+" in r.text
    assert server.engine.queue.waiting == 0


def test_batch_grid_only_when_saving_as_a1111(server):
    body = {**GEN, "batch_size": 2}
    r = post(server, "txt2img", body)
    assert len(r.json()["images"]) == 2 and info_of(r)["index_of_first_image"] == 0
    before = saved_pngs(server.data_dir)
    r = post(server, "txt2img", {**body, "save_images": True})
    images = [decode(b) for b in r.json()["images"]]
    assert len(images) == 3 and info_of(r)["index_of_first_image"] == 1 and info_of(r)["all_seeds"] == [31, 32]
    assert images[0].size == (128, 64) and np.array_equal(px(images[0])[:, 64:], px(images[2]))
    grids = [p for p in saved_pngs(server.data_dir) - before if "txt2img-grids" in p.parts]
    assert len(grids) == 1
    options = requests.get(f"{server.api}/options", timeout=10).json()
    assert options["grid_save"] is True and options["return_grid"] is True
    assert requests.post(f"{server.api}/options", json={"return_grid": False}, timeout=10).status_code == 200
    try:
        r = post(server, "txt2img", {**body, "save_images": True})
        assert len(r.json()["images"]) == 2 and info_of(r)["index_of_first_image"] == 0
    finally:
        requests.post(f"{server.api}/options", json={"return_grid": True}, timeout=10)


def test_alwayson_scripts_with_every_unit_disabled_are_accepted(server):
    units = [{"enabled": False, "module": "canny", "model": "control_v11p_sd15_canny [d14c016b]", "weight": 1.0}] * 3
    r = post(server, "txt2img", {**GEN, "alwayson_scripts": {"ControlNet": {"args": units}}})
    assert r.status_code == 200, r.text
    plain = post(server, "txt2img", GEN)
    assert r.json()["images"] == plain.json()["images"]


def test_alwayson_scripts_that_would_change_the_result_are_refused_by_name(server):
    args = [{"enabled": False}, {"enabled": True, "ad_model": "face_yolov8n.pt", "ad_prompt": "x" * 50}]
    r = post(server, "txt2img", {**GEN, "alwayson_scripts": {"ADetailer": {"args": args}}})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "ADetailer" in detail and "not installed" in detail and "face_yolov8n" not in detail and "xxxx" not in detail
    assert server.engine.queue.waiting == 0


def test_a_controlnet_unit_with_a_bad_image_is_refused_by_unit_and_field(server):
    """ControlNet is built in (webui/api/controlnet.py): a bad unit is a 422 naming it, never echoing the data."""
    units = [{"enabled": False}, {"enabled": True, "module": "canny", "input_image": "x" * 50}]
    r = post(server, "txt2img", {**GEN, "alwayson_scripts": {"ControlNet": {"args": units}}})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "ControlNet unit 1 image" in detail and "xxxx" not in detail
    assert server.engine.queue.waiting == 0
