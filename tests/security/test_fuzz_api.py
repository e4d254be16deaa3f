"""Issue 15: a bounded, seeded fuzz of the API. Valid bodies of txt2img, img2img, png-info, options,
extra-single-image and extra-batch-images get one to three fields replaced by junk (wrong types, huge/negative/
non-finite numbers, odd text, nested junk) or by in-range values, or the whole body replaced. Whatever comes in, the
answer is never a 5xx, a 4xx is a JSON error with a detail, and the server keeps answering /progress. Generation
bodies stay at 64x64 and 1-2 steps, and no replacement is a valid expensive value (no 2048 sides, no 1000 steps), so
the cases that pass run fast on a CPU."""
from __future__ import annotations

import base64
import io
import json
import random

import pytest
import requests
from PIL import Image

from tests.api.helpers import b64png, pattern_image, square_mask

SEED = 15
N_CASES = 150
IMG = b64png(pattern_image())
MASK = b64png(square_mask())


def _nested(depth: int, leaf) -> object:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


NUMBERS = [0, -1, -7, -2**63, 2**63, 2**64, 10**30, 1e308, -1e308, 1.5, 1e-320, -0.0, float("nan"), float("inf"),
           float("-inf")]
TEXTS = ["", "7", "\ud800", "a \udfff b", "a\x00b", "\x00", "\u202eevil", "\U0001F4A5" * 20, "A" * 40_000, "null",
         "../../etc/passwd", "__nowhere__", "{a|b", "<lora:nope:1>", "%s%n{0}", "\r\n\t", "data:image/png;base64,",
         "Steps: 1, Seed: nan, Size: 64x64", "a\nSteps: 1e400, CFG scale: NaN, Seed: -5, Size: 99999x1, Clip skip: x"]
SHAPES = [None, True, False, [], {}, [1, 2], {"a": 1}, ["\ud800"], {"\ud800": 1}, {"CLIP_stop_at_last_layers": float("nan")},
          [0] * 1000, _nested(200, 1), _nested(301, 1), _nested(50, "\ud800")]
JUNK = NUMBERS + TEXTS + SHAPES


def _image_variants() -> list[str]:
    """Images that are valid but unusual: the modes and formats the decoders must cope with."""
    base = pattern_image()
    out = [b64png(base.convert(mode)) for mode in ("RGBA", "LA", "L", "P", "1", "I;16")]
    out += [b64png(Image.new("RGB", (1, 1))), b64png(base, prefix=True)]
    for fmt, image in (("JPEG", base), ("JPEG", base.convert("CMYK")), ("WEBP", base), ("GIF", base),
                       ("BMP", base), ("TIFF", base)):
        buf = io.BytesIO()
        image.save(buf, format=fmt)
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


IMAGES = _image_variants()
# In-range values (cheap ones only: small sides, few steps), so that fuzzed bodies also get past validation and run
PLAUSIBLE = {
    "steps": [1, 2, "2", 2.0], "width": [64, 72, 65, "64"], "height": [64, 71], "batch_size": [1, 2], "n_iter": [1, 2],
    "cfg_scale": [0, 1, 100, 7.5], "denoising_strength": [0, 1, 0.01], "subseed_strength": [0, 1, 0.5],
    "seed": [0, -1, 2**63 - 2, 4294967295], "subseed": [0, 2**63 - 1], "eta": [0, 1, -1, 100],
    "prompt": ["", "(a:1.5) [b:c:0.5] BREAK d", "{a|b} c", "a" * 32_768], "negative_prompt": ["", "[x|y]"],
    "mask_blur": [0, 256], "mask_blur_x": [0, 64], "inpaint_full_res_padding": [0, 10**6, 64],
    "resize_mode": [0, 1, 2], "inpainting_fill": [0, 1], "inpaint_full_res": [True, False],
    "inpainting_mask_invert": [0, 1], "upscaling_resize": [0.01, 1, 4, 1e-9], "upscaling_resize_w": [1, 9000, 100],
    "upscaling_resize_h": [1, 70], "upscaler_2": ["Nearest", "none"], "extras_upscaler_2_visibility": [0, 0.5, 1],
    "upscaler_1": ["Nearest", "LANCZOS"], "override_settings": [{}, {"CLIP_stop_at_last_layers": 2},
                                                                {"sd_vae": "None"}, {"samples_format": "png"}],
    "infotext": ["a\nSteps: 2, Sampler: Euler a, CFG scale: 3, Seed: 5, Size: 64x64, Clip skip: 2"],
    "CLIP_stop_at_last_layers": [1, 12, 2.0], "sd_vae": ["Automatic", "None"], "samples_save": [True],
    "sd_checkpoints_limit": [2, 16], "styles": [[]], "sampler_name": ["DPM++ 2M", "Euler a", "euler"],
    "scheduler": ["Karras", "automatic"],
}
for _name in ("image", "mask"):
    PLAUSIBLE[_name] = IMAGES
PLAUSIBLE["init_images"] = [[im] for im in IMAGES] + [[IMAGES[0], IMAGES[1]]]
PLAUSIBLE["imageList"] = [[{"data": im}] for im in IMAGES] + [[{"data": IMG, "name": None}], [{"name": "x"}]]

GENERATION = {"prompt": "a red square", "steps": 1, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}
BASES = {
    "txt2img": (GENERATION, ["prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength",
                             "sampler_name", "scheduler", "batch_size", "n_iter", "steps", "cfg_scale", "width",
                             "height", "eta", "denoising_strength", "override_settings", "infotext", "s_noise", "s_tmax",
                             "enable_hr", "hr_scale", "send_images", "save_images", "comments", "alwayson_scripts",
                             "script_args", "script_name", "firstphase_width", "no_such_field"]),
    "img2img": (dict(GENERATION, init_images=[IMG], denoising_strength=0.5),
                ["prompt", "seed", "cfg_scale", "steps", "width", "init_images", "mask", "resize_mode",
                 "denoising_strength", "image_cfg_scale", "mask_blur", "mask_blur_x", "inpainting_fill",
                 "inpaint_full_res", "inpaint_full_res_padding", "inpainting_mask_invert", "initial_noise_multiplier",
                 "include_init_images", "override_settings", "infotext"]),
    "png-info": ({"image": IMG}, ["image"]),
    "extra-single-image": ({"image": IMG, "upscaler_1": "Lanczos", "upscaling_resize": 1.5},
                           ["image", "resize_mode", "upscaling_resize", "upscaling_resize_w", "upscaling_resize_h",
                            "upscaling_crop", "upscaler_1", "upscaler_2", "extras_upscaler_2_visibility",
                            "gfpgan_visibility", "show_extras_results"]),
    "extra-batch-images": ({"imageList": [{"data": IMG, "name": "a.png"}], "upscaler_1": "Nearest",
                            "upscaling_resize": 1.5}, ["imageList", "upscaling_resize", "upscaler_1", "resize_mode"]),
    "options": ({"CLIP_stop_at_last_layers": 1},
                ["CLIP_stop_at_last_layers", "sd_vae", "sd_model_checkpoint", "samples_save", "sd_checkpoints_limit",
                 "api_always_save", "samples_format", "no_such_option"]),
}


def _cases() -> list[tuple[str, str, str]]:
    """(endpoint, what was changed, raw JSON body). json.dumps writes NaN/Infinity tokens and escapes lone
    surrogates, so the body carries exactly what a hostile client can send."""
    rnd = random.Random(SEED)
    cases = []
    for i in range(N_CASES):
        path = rnd.choice(list(BASES))
        base, fields = BASES[path]
        if rnd.random() < 0.08:
            body, what = rnd.choice(JUNK + [[base], [[[]]]]), "whole body"
            if isinstance(body, dict):  # unknown keys are ignored: keep the cheap base, or it is a 512x512 job
                body = {**base, **body}
        else:
            body = dict(base)
            if path == "img2img" and rnd.random() < 0.3:
                body["mask"] = MASK
            changed = rnd.sample(fields, rnd.randint(1, min(3, len(fields))))
            for name in changed:
                plausible = PLAUSIBLE.get(name)
                body[name] = rnd.choice(plausible) if plausible and rnd.random() < 0.5 else rnd.choice(JUNK)
            what = "+".join(changed)
        cases.append((path, f"{i}-{path}-{what}", json.dumps(body)))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def restore_options(server):
    yield
    api = server.app.state.sdapi
    server.engine.models.set_cache_size(2)
    server.engine.settings.checkpoint_cache_size = 2
    server.engine.select_vae("Automatic")
    api.options.clip_skip = 1


@pytest.mark.parametrize("path,case,body", CASES, ids=[c[1][:60] for c in CASES])
def test_fuzzed_body_never_gets_a_5xx(server, restore_options, path, case, body):
    r = requests.post(f"{server.api}/{path}", data=body, headers={"content-type": "application/json"}, timeout=120)
    assert r.status_code < 500, (case, r.status_code, r.text[:500])
    if r.status_code >= 400:
        assert r.json().get("detail"), (case, r.text[:300])
    assert requests.get(f"{server.api}/progress", timeout=10).status_code == 200


def test_fuzz_reaches_every_endpoint_and_both_outcomes(server, restore_options):
    """The fuzz is not vacuous: every endpoint is hit, and some cases pass while others are refused."""
    assert {c[0] for c in CASES} == set(BASES)
    statuses = set()
    for path, _, body in CASES[:40]:
        r = requests.post(f"{server.api}/{path}", data=body, headers={"content-type": "application/json"},
                          timeout=120)
        statuses.add(r.status_code // 100)
    assert statuses == {2, 4}
