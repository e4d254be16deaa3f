"""Issue 15, items 5-7: wildcards that leave their folder through a symlink, input that ties up the CPU or memory
(a quadratic infotext parse, giant prompts, a PNG header claiming 60 megapixels) and input that made the API
answer 500 instead of a 4xx naming the field. Each test sends the request the probe sent."""
from __future__ import annotations

import base64
import re
import struct
import time
import zlib

import pytest
import requests

from tests.api.helpers import b64png, pattern_image
from webui.engine.infotext import MAX_PARAMS_LINE_CHARS, param_pairs, parse_infotext
from webui.engine.prompts.wildcards import WildcardError, WildcardExpander
from webui.engine.requests import MAX_PROMPT_CHARS, GenerationRequest, RequestError

GOOD = {"prompt": "ok", "steps": 1, "width": 64, "height": 64, "seed": 1}
IMG = b64png(pattern_image())

# The regex parse_infotext used before (A1111's): quadratic on a long run of words without a colon.
OLD_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def post_raw(server, path: str, text: str | bytes, timeout: float = 60) -> requests.Response:
    """POST a JSON body exactly as given (NaN, lone surrogates, broken UTF-8 cannot go through json=)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return requests.post(f"{server.api}/{path}", data=data, headers={"content-type": "application/json"},
                         timeout=timeout)


def assert_4xx_naming(r: requests.Response, *words: str) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    detail = str(r.json()["detail"])
    for word in words:
        assert word in detail, f"{word!r} not in {detail[:500]!r}"


def assert_still_serving(server) -> None:
    assert requests.get(f"{server.api}/progress", timeout=10).status_code == 200
    r = requests.post(f"{server.api}/png-info", json={"image": IMG}, timeout=30)
    assert r.status_code == 200, r.text


# ---- 5. wildcards stay inside their folder -------------------------------------------------------------------

@pytest.fixture
def linked_wildcards(tmp_path):
    root = tmp_path / "wildcards"
    root.mkdir()
    (root / "colors.txt").write_text("red\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n", encoding="utf-8")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "linkfile.txt").symlink_to(outside / "secret.txt")
    (root / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop must not hang the walk
    return root


@pytest.mark.parametrize("template", ["__linkdir/secret__", "__linkfile__", "__linkdir/*__", "__**/secret__",
                                      "__loop/linkdir/secret__"])
def test_wildcards_do_not_follow_symlinks_out_of_the_folder(linked_wildcards, template):
    wc = WildcardExpander(linked_wildcards)
    with pytest.raises(WildcardError, match="not found"):
        wc.expand(f"a {template} b", 1)
    assert "TOP SECRET" not in " ".join(wc.combinations("{x|y} __*__"))
    assert wc.list_files() == ["colors"]
    assert wc.expand("__colors__", 1) == "red"
    with pytest.raises(WildcardError, match="outside"):  # the editor refused it already; same answer as before
        wc.read("linkdir/secret")


def test_wildcard_symlink_inside_the_folder_still_works(tmp_path):
    root = tmp_path / "wildcards"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "cats.txt").write_text("tabby\n", encoding="utf-8")
    (root / "alias.txt").symlink_to(root / "sub" / "cats.txt")
    assert WildcardExpander(root).expand("__alias__ __sub/cats__", 1) == "tabby tabby"


# ---- 6. CPU and memory -----------------------------------------------------------------------------------------

ADVERSARIAL_LINES = {
    "words and spaces": "a " * 65536,  # 128 KiB
    "one long word": "a" * 131072,
    "keys without values": "Steps - a/b " * 10923,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL_LINES))
def test_params_line_parse_is_linear(name):
    line = ADVERSARIAL_LINES[name]
    start = time.perf_counter()
    assert param_pairs(line) == []
    assert time.perf_counter() - start < 2  # the old regex took about 80 s on these 128 KiB
    start = time.perf_counter()
    parse_infotext(f"prompt\nNegative prompt: n\n{line}")
    assert time.perf_counter() - start < 2


def test_the_old_regex_really_was_quadratic_on_these_lines():
    """Guards the guard: on a 1/16 slice the old parse already takes measurable time, the new one does not."""
    line = ADVERSARIAL_LINES["words and spaces"][:8192]
    start = time.perf_counter()
    OLD_RE_PARAM.findall(line)
    old = time.perf_counter() - start
    start = time.perf_counter()
    param_pairs(line)
    new = time.perf_counter() - start
    assert old > 20 * new


def test_params_line_scanner_gives_what_the_a1111_regex_gives():
    import random

    rnd = random.Random(15)
    alphabet = 'ab1_é² \t\u00a0:,"\\-/x'
    for _ in range(20000):
        line = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24)))
        assert param_pairs(line) == OLD_RE_PARAM.findall(line), line


def test_params_line_over_the_cap_is_not_parsed():
    pad = "x" * MAX_PARAMS_LINE_CHARS
    assert parse_infotext(f"p\nSteps: 3, Seed: 2, Size: 64x64, Pad: {pad}", defaults=False)["Prompt"].startswith("p\n")
    assert parse_infotext("p\nSteps: 3, Seed: 2, Size: 64x64", defaults=False)["Seed"] == "2"


def test_png_info_with_a_128k_adversarial_parameters_line_answers_fast(server):
    from PIL import PngImagePlugin
    import io

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a " * 65536)
    buf = io.BytesIO()
    pattern_image().save(buf, format="PNG", pnginfo=info)
    start = time.perf_counter()
    r = requests.post(f"{server.api}/png-info", json={"image": base64.b64encode(buf.getvalue()).decode()},
                      timeout=60)
    assert r.status_code == 200 and time.perf_counter() - start < 5
    assert r.json()["info"] == "a " * 65536
    assert_still_serving(server)


def test_txt2img_infotext_field_is_capped(server):
    line = "a " * 65536
    start = time.perf_counter()
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, infotext=f"p\n{line}"), timeout=60)
    assert time.perf_counter() - start < 5
    assert_4xx_naming(r, "infotext")
    assert_still_serving(server)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_giant_prompt_is_refused_before_the_queue(server, field):
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, **{field: "a " * 500_000}), timeout=60)
    assert r.status_code == 422, r.text[:300]
    assert_4xx_naming(r, field, str(MAX_PROMPT_CHARS))
    assert server.engine.queue.waiting == 0 and server.engine.queue.current is None
    assert_still_serving(server)


def test_prompt_cap_holds_for_every_face():
    """UI and CLI build GenerationRequest directly: the cap lives in validate()."""
    GenerationRequest(prompt="a" * MAX_PROMPT_CHARS).validate(2048, 16)
    for field in ("prompt", "negative_prompt"):
        with pytest.raises(RequestError, match=field):
            GenerationRequest(**{field: "a" * (MAX_PROMPT_CHARS + 1)}).validate(2048, 16)


def png_claiming(width: int, height: int) -> str:
    """A few hundred bytes of PNG whose header claims width x height RGB pixels (IDAT: a little zlib of zeros)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("size", [(1, 60_000_000), (60_000_000, 1), (20000, 20000)])
def test_img2img_with_a_huge_header_is_refused_before_decoding(server, size):
    r = requests.post(f"{server.api}/img2img", json=dict(GOOD, init_images=[png_claiming(*size)]), timeout=60)
    assert_4xx_naming(r, "init_images[0]", "too large")
    assert_still_serving(server)


@pytest.mark.parametrize("path,field", [("png-info", "image"), ("extra-single-image", "image")])
def test_other_image_fields_refuse_a_huge_header(server, path, field):
    r = requests.post(f"{server.api}/{path}", json={field: png_claiming(1, 60_000_000)}, timeout=60)
    assert_4xx_naming(r, field, "too large")


# ---- 7. 500s that must be 4xx naming the field -----------------------------------------------------------------

@pytest.mark.parametrize("field", ["seed", "subseed"])
def test_seed_too_big_is_a_422(server, field):
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, **{field: 18446744073709551616}), timeout=60)
    assert_4xx_naming(r, field)
    assert_still_serving(server)


def test_lone_surrogate_in_the_prompt_is_a_422(server):
    r = post_raw(server, "txt2img", '{"prompt": "a \\ud800 circle", "steps": 1, "width": 64, "height": 64}')
    assert_4xx_naming(r, "prompt", "surrogate")
    assert_still_serving(server)


@pytest.mark.parametrize("field", ["alwayson_scripts", "comments", "override_settings"])
def test_lone_surrogate_in_a_key_is_a_422(server, field):
    r = post_raw(server, "txt2img", '{"prompt": "a", "steps": 1, "width": 64, "height": 64, "%s": {"\\ud800": 1}}'
                 % field)
    assert_4xx_naming(r, field, "surrogate")
    assert_still_serving(server)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_clip_skip_override_is_a_422(server, value):
    body = '{"prompt": "ok", "steps": 1, "width": 64, "height": 64, "override_settings": {"CLIP_stop_at_last_layers": %s}}'
    assert_4xx_naming(post_raw(server, "txt2img", body % value), "CLIP_stop_at_last_layers")
    assert_4xx_naming(post_raw(server, "options", '{"CLIP_stop_at_last_layers": %s}' % value),
                      "CLIP_stop_at_last_layers")
    assert requests.get(f"{server.api}/options", timeout=10).json()["CLIP_stop_at_last_layers"] == 1
    assert_still_serving(server)


@pytest.mark.parametrize("seed", ["nan", "inf", "1e30", "-5", "18446744073709551616", "abc"])
def test_bad_seed_in_a_pasted_infotext_is_a_422(server, seed):
    infotext = f"a circle\nSteps: 1, Sampler: Euler, CFG scale: 7, Seed: {seed}, Size: 64x64"
    r = requests.post(f"{server.api}/txt2img", json={"infotext": infotext}, timeout=60)
    assert_4xx_naming(r, "infotext", "seed")
    assert_still_serving(server)


@pytest.mark.parametrize("value", [5, 1.5, True, ["a"], {"a": 1}, "A" * 40_000, "a\x00b.pt"])
def test_sd_vae_of_the_wrong_type_is_a_422(server, value):
    assert_4xx_naming(requests.post(f"{server.api}/options", json={"sd_vae": value}, timeout=10), "sd_vae")
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, override_settings={"sd_vae": value}), timeout=60)
    assert_4xx_naming(r, "sd_vae")
    assert_still_serving(server)


@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e400"])
def test_extras_upscaling_resize_not_finite_is_a_422(server, value):
    body = '{"image": "%s", "upscaler_1": "Lanczos", "upscaling_resize": %s}' % (IMG, value)
    assert_4xx_naming(post_raw(server, "extra-single-image", body), "upscaling_resize")
    assert_still_serving(server)


@pytest.mark.parametrize("body", [b'{"prompt": "\xff\xfe broken"}', b"\xc3\x28", b"[" * 100_000,
                                  b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"])
@pytest.mark.parametrize("path", ["txt2img", "options", "png-info"])
def test_unparseable_bodies_are_a_4xx_json_answer(server, path, body):
    r = post_raw(server, path, body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "detail" in r.json()
    assert_still_serving(server)


@pytest.mark.parametrize("field", ["cfg_scale", "denoising_strength", "subseed_strength", "eta", "s_noise",
                                   "image_cfg_scale"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(server, field, value):
    body = ('{"prompt": "ok", "steps": 1, "width": 64, "height": 64, "init_images": ["%s"], "%s": %s}'
            % (IMG, field, value))
    assert_4xx_naming(post_raw(server, "img2img", body), field)
    assert server.engine.queue.waiting == 0
    assert_still_serving(server)


@pytest.mark.parametrize("field", ["cfg_scale", "denoising_strength", "subseed_strength", "eta"])
def test_non_finite_numbers_are_refused_by_the_engine(field):
    with pytest.raises(RequestError, match=field):
        GenerationRequest(init_images=[pattern_image()], **{field: float("nan")}).validate(2048, 16)


# ---- found by tests/security/test_fuzz_api.py ------------------------------------------------------------------

@pytest.mark.parametrize("factor", [1e308, 1e300])
def test_extras_upscale_factor_that_overflows_is_a_422(server, factor):
    body = {"image": IMG, "upscaler_1": "Lanczos", "upscaling_resize": factor}
    assert_4xx_naming(requests.post(f"{server.api}/extra-single-image", json=body, timeout=60), "upscaling_resize")
    assert_still_serving(server)


@pytest.mark.parametrize("name", ["A" * 40_000, "a\x00b.safetensors", ["x"]])
def test_impossible_checkpoint_names_are_a_4xx(server, name):
    r = requests.post(f"{server.api}/options", json={"sd_model_checkpoint": name}, timeout=60)
    assert_4xx_naming(r, "sd_model_checkpoint")
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, override_settings={"sd_model_checkpoint": name}),
                      timeout=60)
    assert_4xx_naming(r, "sd_model_checkpoint")
    assert server.engine.models.active.title == server.titles["a"]
    assert_still_serving(server)


@pytest.mark.parametrize("field", ["comments", "override_settings", "alwayson_scripts"])
def test_deeply_nested_field_is_a_422(server, field):
    value: object = 1
    for i in range(300):
        value = [value] if i % 2 else {"k": value}
    r = requests.post(f"{server.api}/txt2img", json=dict(GOOD, **{field: {"k": value}}), timeout=60)
    assert_4xx_naming(r, field, "nested")
    assert_still_serving(server)


def test_img2img_width_too_big_for_a_c_long_is_a_422(server):
    r = requests.post(f"{server.api}/img2img", json=dict(GOOD, init_images=[IMG], width=2**63), timeout=60)
    assert_4xx_naming(r, "width")
    assert_still_serving(server)


def test_img2img_size_is_checked_before_the_init_image_is_decoded(server, monkeypatch):
    """The init image was decoded and resized to width x height before the size was checked: 16384 x 16384 is
    800 MB of RGB."""
    from webui.api import schemas, translate

    def decode_image(*args):
        raise AssertionError("the init image was decoded before the size was checked")

    monkeypatch.setattr(translate, "decode_image", decode_image)
    body = schemas.Img2ImgRequest(**dict(GOOD, init_images=[IMG], width=16384, height=16384))
    with pytest.raises(RequestError, match="width"):
        translate.prepare(server.engine, server.app.state.sdapi.options, body, "img2img")
