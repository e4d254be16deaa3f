"""sd-webui-controlnet's API on the tiny model: /controlnet/* routes and alwayson_scripts.controlnet units."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _image(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def controlnet_title(server):
    from tests.fixtures.tiny_controlnets import write_tiny_controlnet

    folder = server.data_dir / "models" / "ControlNet"
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_controlnet(folder / "tiny-control.safetensors", "sd1")
    (title,) = requests.get(f"{server.url}/controlnet/model_list", params={"update": True}, timeout=30).json()[
        "model_list"]
    return title


def _mask() -> Image.Image:
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (36, 36, 60, 60))
    return image


def test_lists_and_version(server, controlnet_title):
    base = f"{server.url}/controlnet"
    assert requests.get(f"{base}/version", timeout=10).json() == {"version": 2}
    assert controlnet_title.startswith("tiny-control [")
    modules = requests.get(f"{base}/module_list", timeout=10).json()
    assert {"none", "canny", "invert (from white bg & black line)", "depth_midas"} <= set(modules["module_list"])
    assert modules["module_detail"]["canny"]["sliders"][1]["value"] == 100
    aliases = requests.get(f"{base}/module_list", params={"alias_names": True}, timeout=10).json()["module_list"]
    assert "invert" in aliases
    assert requests.get(f"{base}/settings", timeout=10).json() == {"control_net_unit_count": 3}


def test_detect(server):
    image = Image.new("RGB", (64, 64), (250, 250, 250))
    image.paste((0, 0, 0), (20, 20, 44, 44))
    r = requests.post(f"{server.url}/controlnet/detect", json={
        "controlnet_module": "canny", "controlnet_input_images": [_b64(image)], "controlnet_processor_res": 64,
        "controlnet_threshold_a": 50, "controlnet_threshold_b": 150}, timeout=60)
    assert r.status_code == 200, r.text
    edges = _image(r.json()["images"][0])
    assert edges.shape == (64, 64, 3) and edges[17:24, 25:40].max() == 255 and edges[30:34, 30:34].max() == 0
    bad = requests.post(f"{server.url}/controlnet/detect", json={"controlnet_module": "nope",
                                                               "controlnet_input_images": [_b64(image)]}, timeout=10)
    assert bad.status_code == 422 and "nope" in bad.text


def test_txt2img_units(server, controlnet_title):
    body = {"prompt": "a circle", "seed": 5, "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler"}

    def run(*units):
        extra = {"alwayson_scripts": {"controlnet": {"args": list(units)}}} if units else {}
        r = requests.post(f"{server.url}/sdapi/v1/txt2img", json={**body, **extra}, timeout=120)
        assert r.status_code == 200, r.text
        return _image(r.json()["images"][0]), json.loads(r.json()["info"])

    unit = {"enabled": True, "module": "none", "model": controlnet_title, "weight": 1.0, "image": _b64(_mask()),
            "control_mode": 0, "resize_mode": "Just Resize"}
    plain, _ = run()
    off, _ = run({**unit, "enabled": False}, {"enabled": False})
    assert np.array_equal(off, plain)
    on, info = run(unit, {"enabled": False})
    assert np.abs(on - plain).mean() > 1.0
    assert info["extra_generation_params"]["ControlNet 0"].startswith(f"Module: none, Model: {controlnet_title}")
    assert 'ControlNet 0: "Module: none' in info["infotexts"][0]
    legacy, _ = run({k: v for k, v in unit.items() if k != "image"} | {"input_image": _b64(_mask())})
    assert np.array_equal(legacy, on)
    r = requests.post(f"{server.url}/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"controlnet": {
        "args": [{**unit, "model": "missing"}]}}}, timeout=30)
    assert r.status_code == 404 and "missing" in r.text
