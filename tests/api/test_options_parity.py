"""/sdapi/v1/options as A1111 clients use it: GET answers A1111's keys, options this app acts on are honoured,
the others (and keys of extensions we don't have) are stored, returned and kept across restarts, and an unknown key
never makes the rest of the body (such as a checkpoint switch) fail."""
from __future__ import annotations

import json

import requests

A1111_KEYS = ("send_seed", "live_previews_enable", "show_progress_every_n_steps", "samples_format",
              "CLIP_stop_at_last_layers", "sd_checkpoints_limit", "sd_model_checkpoint", "sd_vae", "samples_save",
              "jpeg_quality", "eta_ancestral", "face_restoration_model", "ESRGAN_tile", "outdir_txt2img_samples")


def options(server) -> dict:
    return requests.get(f"{server.api}/options", timeout=10).json()


def post(server, body: dict):
    return requests.post(f"{server.api}/options", json=body, timeout=120)


def test_get_answers_a1111_keys_with_a1111_defaults(server):
    got = options(server)
    assert set(A1111_KEYS) <= set(got)
    assert got["send_seed"] is True and got["jpeg_quality"] == 80 and got["samples_format"] == "png"
    assert got["live_previews_enable"] is True and got["show_progress_every_n_steps"] == 5


def test_unknown_keys_are_stored_and_never_block_a_checkpoint_switch(server):
    from webui.api.options import ApiOptions

    body = {"sd_model_checkpoint": server.titles["b"], "send_seed": False, "my_extension_option": {"k": [1, 2]}}
    try:
        r = post(server, body)
        assert r.status_code == 200, r.text
        assert server.engine.active_model().title == server.titles["b"]
        got = options(server)
        assert got["send_seed"] is False and got["my_extension_option"] == {"k": [1, 2]}
        saved = json.loads((server.data_dir / "api-options.json").read_text())
        assert saved == {"my_extension_option": {"k": [1, 2]}, "send_seed": False}  # only what differs
        assert ApiOptions(server.engine).snapshot()["send_seed"] is False  # read back at the next start
    finally:
        assert post(server, {"send_seed": True, "my_extension_option": None}).status_code == 200


def test_backed_options_are_honoured_and_wrong_values_named(server):
    engine = server.engine
    try:
        assert post(server, {"show_progress_every_n_steps": 3}).status_code == 200
        assert engine.settings.preview_every == 3
        assert post(server, {"live_previews_enable": False}).status_code == 200
        assert engine.settings.preview_every == 0 and options(server)["live_previews_enable"] is False
        r = post(server, {"ESRGAN_tile": "big", "send_seed": False})
        assert r.status_code == 422 and "ESRGAN_tile" in r.json()["detail"]
        assert options(server)["send_seed"] is True  # checked as a whole: nothing of that body was applied
        r = post(server, {"live_previews_enable": "yes"})
        assert r.status_code == 422 and "live_previews_enable" in r.json()["detail"]
    finally:
        engine.update_settings({"preview_every": 5})


def test_an_unknown_style_is_ignored_with_a_warning(server):
    body = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 3, "styles": ["NoSuchStyle"]}
    r = requests.post(f"{server.api}/txt2img", json=body, timeout=120)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert "Style not found and ignored: 'NoSuchStyle'" in info["warnings"]
    assert info["prompt"] == "a cat" and "Styles array" not in info["infotexts"][0]


def test_the_stored_options_cannot_grow_without_bound(server):
    big = {f"ext_option_{i}": "x" * 60_000 for i in range(20)}  # 1.2 MB in all
    r = post(server, {"send_seed": False, **big})
    assert r.status_code == 422 and "exceed" in r.json()["detail"]
    assert options(server)["send_seed"] is True and "ext_option_0" not in options(server)  # nothing stored
    r = post(server, {"k" * 300: 1})
    assert r.status_code == 422 and "too long" in r.json()["detail"]
