"""Tests for webui.engine.infotext (A1111-compatible generation parameters text) and webui.engine.image_files
(that text in PNG, JPEG and WebP files)."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from webui.engine import image_files, infotext
from webui.engine.image_files import (
    decode_user_comment,
    encode_user_comment,
    exif_bytes_for,
    read_infotext,
    save_image_with_infotext,
)
from webui.engine.infotext import (
    build_infotext,
    format_params_line,
    parse_infotext,
    quote,
    split_sampler_scheduler,
    typed_params,
)

SPEC_LINE = (
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, "
    'Clip skip: 2, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)

UNICODE_TEXT = (
    "一只猫, (masterpiece:1.2), café — ünïcödé 🐱\n"
    "Negative prompt: 低质量, blurry\n"
    'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Template: "猫: cat"'
)


def spec_params_shuffled() -> dict[str, object]:
    # deliberately not in A1111 order
    return {
        "Version": "v1.10.1",
        "Lora hashes": "add_detail: 7c6bad76eb54",
        "Clip skip": 2,
        "Denoising strength": 0.5,
        "Model": "v1-5-pruned-emaonly",
        "Model hash": "6ce0161689",
        "Size": "512x768",
        "Seed": 1234567890,
        "CFG scale": 7,
        "Schedule type": "Karras",
        "Sampler": "DPM++ 2M",
        "Steps": 20,
    }


def temp_names(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# ---------------------------------------------------------------- building


def test_spec_example_line_builds_exactly():
    assert format_params_line(spec_params_shuffled()) == SPEC_LINE


def test_spec_example_full_text_builds_exactly():
    text = build_infotext("a cat,\nsitting", "ugly, blurry", spec_params_shuffled())
    assert text == "a cat,\nsitting\nNegative prompt: ugly, blurry\n" + SPEC_LINE


def test_negative_prompt_line_omitted_when_empty():
    assert build_infotext("a cat", "", {"Steps": 20, "Seed": 1, "CFG scale": 7}) == (
        "a cat\nSteps: 20, CFG scale: 7, Seed: 1"
    )


def test_key_order_known_keys_then_extras_in_insertion_order_then_version():
    params = {
        "Version": "v1.10.1",
        "Hires upscale": 2,
        "Lora hashes": "x: 1",
        "Tiling": "True",
        "RNG": "CPU",
        "Init image hash": "abc",
        "Token merging ratio": 0.3,
        "ENSD": 31337,
        "Clip skip": 2,
        "Conditional mask weight": 1.0,
        "Denoising strength": 0.75,
        "Seed resize from": "-1x-1",
        "Variation seed strength": 0.2,
        "Variation seed": 42,
        "VAE": "vae-ft-mse",
        "VAE hash": "735e4c3a44",
        "Model": "m",
        "Model hash": "h",
        "Size": "512x512",
        "Face restoration": "CodeFormer",
        "Seed": 7,
        "Image CFG scale": 1.5,
        "CFG scale": 7.5,
        "Schedule type": "Karras",
        "Sampler": "Euler",
        "Steps": 30,
        "Emphasis": "No norm",
    }
    assert format_params_line(params) == (
        "Steps: 30, Sampler: Euler, Schedule type: Karras, CFG scale: 7.5, Image CFG scale: 1.5, "
        "Seed: 7, Face restoration: CodeFormer, Size: 512x512, Model hash: h, Model: m, "
        "VAE hash: 735e4c3a44, VAE: vae-ft-mse, Variation seed: 42, Variation seed strength: 0.2, "
        "Seed resize from: -1x-1, Denoising strength: 0.75, Conditional mask weight: 1.0, Clip skip: 2, "
        "ENSD: 31337, Token merging ratio: 0.3, Init image hash: abc, RNG: CPU, Tiling: True, "
        'Hires upscale: 2, Lora hashes: "x: 1", Emphasis: No norm, Version: v1.10.1'
    )


def test_none_values_and_default_clip_skip_and_gpu_rng_are_left_out():
    params = {"Steps": 20, "Sampler": None, "Clip skip": 1, "RNG": "GPU", "Seed": 5, "Extra": None, "CFG scale": 7}
    assert format_params_line(params) == "Steps: 20, CFG scale: 7, Seed: 5"
    assert format_params_line({"Clip skip": "1"}) == ""
    assert format_params_line({"Clip skip": 0}) == ""
    assert format_params_line({"Clip skip": "3"}) == "Clip skip: 3"


def test_value_equal_to_key_is_written_bare():
    assert format_params_line({"Steps": 1, "Hires fix": "Hires fix", "Seed": 2}) == "Steps: 1, Seed: 2, Hires fix"


def test_size_tuple_is_written_as_wxh():
    assert format_params_line({"Size": (640, 480), "Hires resize": [1024, 768]}) == (
        "Size: 640x480, Hires resize: 1024x768"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Euler a", "Euler a"),
        (7, "7"),
        (0.5, "0.5"),
        ("a, b", '"a, b"'),
        ("add_detail: 7c6bad76eb54", '"add_detail: 7c6bad76eb54"'),
        ("line\nbreak", '"line\\nbreak"'),
        ('say "hi"', 'say "hi"'),
        ('a, "b"', '"a, \\"b\\""'),
        ('"quoted"', '"\\"quoted\\""'),
        ("猫, 犬", '"猫, 犬"'),
        ("C:\\models\\x", '"C:\\\\models\\\\x"'),
    ],
)
def test_quote(value, expected):
    assert quote(value) == expected


def test_quoted_values_in_line():
    params = {"Steps": 1, "Template": "a, b\nc", "Note": 'he said "no", twice', "Path": "C:\\x"}
    assert format_params_line(params) == (
        'Steps: 1, Template: "a, b\\nc", Note: "he said \\"no\\", twice", Path: "C:\\\\x"'
    )


# ---------------------------------------------------------------- parsing


def test_parse_spec_example():
    parsed = parse_infotext("a cat, sitting\nNegative prompt: ugly\n" + SPEC_LINE, defaults=False)
    assert parsed == {
        "Steps": "20",
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": "7",
        "Seed": "1234567890",
        "Size-1": "512",
        "Size-2": "768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Denoising strength": "0.5",
        "Clip skip": "2",
        "Lora hashes": "add_detail: 7c6bad76eb54",
        "Version": "v1.10.1",
        "Prompt": "a cat, sitting",
        "Negative prompt": "ugly",
    }


def test_parse_old_a1111_docstring_example():
    text = (
        "girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)\n"
        "Negative prompt: ugly, fat, (((deformed))), [blurry], (extra_limb)\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)"
    assert parsed["Negative prompt"] == "ugly, fat, (((deformed))), [blurry], (extra_limb)"
    assert parsed["Sampler"] == "Euler a"
    assert parsed["Seed"] == "965400086"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "512")
    assert parsed["Model hash"] == "45dee52b"


ROUND_TRIP_CASES = [
    ("a cat, sitting: on a mat", "ugly, blurry"),
    ('a "quoted" prompt, with "commas", and: colons', 'neg "quoted"'),
    ("first line\nsecond line, with comma\nthird: colon", "neg one\nneg two, more\nneg: three"),
    ("一只猫, café, ünïcödé 🐱", "低质量, 悪い"),
    ("only a prompt", ""),
    ("(masterpiece:1.2), [blurry:0.5], <lora:add_detail:0.8>", ""),
    ("line one\n\nline three after blank", "n1\n\nn3"),
    ("", "only negative"),
]


@pytest.mark.parametrize(("prompt", "negative"), ROUND_TRIP_CASES)
def test_build_parse_round_trip(prompt, negative):
    params = {
        "Steps": 25,
        "Sampler": "DPM++ 2M SDE",
        "Schedule type": "Exponential",
        "CFG scale": 6.5,
        "Seed": 4242,
        "Size": "768x512",
        "Lora hashes": "add_detail: 7c6bad76eb54, other: 0123456789ab",
        "Template": 'multi\nline, "template": yes',
        "Styles": "猫, style",
        "Quoted": '"starts and ends with quotes"',
        "Version": "v1.10.1",
    }
    text = build_infotext(prompt, negative, params)
    parsed = parse_infotext(text, defaults=False)
    assert parsed == {
        "Steps": "25",
        "Sampler": "DPM++ 2M SDE",
        "Schedule type": "Exponential",
        "CFG scale": "6.5",
        "Seed": "4242",
        "Size-1": "768",
        "Size-2": "512",
        "Lora hashes": "add_detail: 7c6bad76eb54, other: 0123456789ab",
        "Template": 'multi\nline, "template": yes',
        "Styles": "猫, style",
        "Quoted": '"starts and ends with quotes"',
        "Version": "v1.10.1",
        "Prompt": prompt,
        "Negative prompt": negative,
    }


def test_round_trip_of_unicode_text_is_stable():
    parsed = parse_infotext(UNICODE_TEXT, defaults=False)
    assert parsed["Prompt"] == "一只猫, (masterpiece:1.2), café — ünïcödé 🐱"
    assert parsed["Negative prompt"] == "低质量, blurry"
    assert parsed["Template"] == "猫: cat"
    params = {k: v for k, v in parsed.items() if k not in ("Prompt", "Negative prompt", "Size-1", "Size-2")}
    params["Size"] = f"{parsed['Size-1']}x{parsed['Size-2']}"
    rebuilt = build_infotext(parsed["Prompt"], parsed["Negative prompt"], params)
    assert rebuilt == UNICODE_TEXT


def test_params_line_with_fewer_than_three_pairs_is_prompt_text():
    parsed = parse_infotext("a cat\nSteps: 20, Sampler: Euler", defaults=False)
    assert parsed == {"Prompt": "a cat\nSteps: 20, Sampler: Euler", "Negative prompt": ""}


def test_two_pair_line_after_negative_prompt_belongs_to_negative_prompt():
    parsed = parse_infotext("p\nNegative prompt: n\nfoo: 1, bar: 2", defaults=False)
    assert parsed == {"Prompt": "p", "Negative prompt": "n\nfoo: 1, bar: 2"}


def test_three_pair_line_is_params():
    parsed = parse_infotext("a cat\nSteps: 20, Sampler: Euler, Seed: 3", defaults=False)
    assert parsed == {"Steps": "20", "Sampler": "Euler", "Seed": "3", "Prompt": "a cat", "Negative prompt": ""}


def test_only_params_line():
    parsed = parse_infotext("Steps: 20, Sampler: Euler, Seed: 3", defaults=False)
    assert parsed == {"Steps": "20", "Sampler": "Euler", "Seed": "3", "Prompt": "", "Negative prompt": ""}


def test_empty_values_are_dropped_like_a1111():
    parsed = parse_infotext("p\nSteps: 20, Hires prompt: , Sampler: Euler, Seed: 3", defaults=False)
    assert "Hires prompt" not in parsed
    assert parsed["Sampler"] == "Euler"


def test_size_splitting():
    parsed = parse_infotext(
        "p\nSteps: 1, Size: 512x768, Hires resize: 1024x1536, Seed resize from: 64x32, Odd: 5x6x7, Neg: -1x-1",
        defaults=False,
    )
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "1536")
    assert (parsed["Seed resize from-1"], parsed["Seed resize from-2"]) == ("64", "32")
    assert parsed["Odd"] == "5x6x7"
    assert parsed["Neg"] == "-1x-1"
    assert "Size" not in parsed and "Hires resize" not in parsed


def test_parse_fills_a1111_defaults():
    parsed = parse_infotext("p\nSteps: 20, Sampler: Euler a, Seed: 1")
    assert parsed["Clip skip"] == "1"
    assert parsed["Schedule type"] == "Automatic"
    assert parsed["RNG"] == "GPU"
    assert parsed["Hires resize-1"] == "0" and parsed["Hires resize-2"] == "0"
    assert parsed["Hires sampler"] == "Use same sampler"
    assert parsed["Hires schedule type"] == "Use same scheduler"
    assert parsed["Hires checkpoint"] == "Use same checkpoint"
    assert parsed["Hires prompt"] == "" and parsed["Hires negative prompt"] == ""
    assert parsed["Masked area padding"] == "32"
    assert parsed["FP8 weight"] == "Disable"
    assert "Cache FP16 weight for LoRA" not in parsed


def test_parse_defaults_do_not_override_present_values():
    parsed = parse_infotext("p\nSteps: 20, Clip skip: 2, RNG: CPU, Schedule type: Karras, Hires resize: 1024x1024")
    assert parsed["Clip skip"] == "2"
    assert parsed["RNG"] == "CPU"
    assert parsed["Schedule type"] == "Karras"
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "1024")


def test_fp8_weight_adds_cache_default():
    parsed = parse_infotext("p\nSteps: 20, Seed: 1, FP8 weight: Enable for SDXL")
    assert parsed["Cache FP16 weight for LoRA"] == "False"


def test_hypernet_is_appended_to_prompt():
    parsed = parse_infotext("a cat\nSteps: 20, Seed: 1, Hypernet: anime, Hypernet strength: 0.5")
    assert parsed["Prompt"] == "a cat<hypernet:anime:0.5>"
    parsed = parse_infotext("a cat\nSteps: 20, Seed: 1, Hypernet: anime")
    assert parsed["Prompt"] == "a cat<hypernet:anime:1.0>"


def test_old_first_pass_size_is_converted():
    parsed = parse_infotext("p\nSteps: 20, Size: 1024x1024, First pass size: 0x0, Seed: 1")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "512")
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "1024")
    parsed = parse_infotext("p\nSteps: 20, Size: 1024x768, First pass size: 640x448, Seed: 1")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("640", "448")
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "768")


@pytest.mark.parametrize(
    ("sampler", "schedule", "expected"),
    [
        ("DPM++ 2M Karras", None, ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Exponential", None, ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ SDE Karras", "Automatic", ("DPM++ SDE", "Karras")),
        ("Euler SGMUniform", None, ("Euler", "SGM Uniform")),
        ("Euler sgm_uniform", None, ("Euler", "SGM Uniform")),
        ("Euler a", None, ("Euler a", None)),
        ("Euler a", "Karras", ("Euler a", "Karras")),
        ("DDIM", None, ("DDIM", None)),
        ("DPM++ 2M SDE Heun", "Exponential", ("DPM++ 2M SDE Heun", "Exponential")),
        ("DPM++ 2M Karras", "Exponential", ("DPM++ 2M", "Karras")),  # combined name wins, as in A1111
    ],
)
def test_split_sampler_scheduler(sampler, schedule, expected):
    assert split_sampler_scheduler(sampler, schedule) == expected


def test_parse_splits_old_combined_sampler_name():
    text = "p\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1"
    parsed = parse_infotext(text)
    assert (parsed["Sampler"], parsed["Schedule type"]) == ("DPM++ 2M", "Karras")
    raw = parse_infotext(text, split_sampler=False)
    assert (raw["Sampler"], raw["Schedule type"]) == ("DPM++ 2M Karras", "Automatic")
    modern = parse_infotext("p\nSteps: 20, Sampler: Euler a, Seed: 1")
    assert (modern["Sampler"], modern["Schedule type"]) == ("Euler a", "Automatic")


def test_parse_splits_hires_sampler():
    parsed = parse_infotext("p\nSteps: 20, Sampler: Euler, Seed: 1, Hires sampler: DPM++ 2M Karras")
    assert (parsed["Hires sampler"], parsed["Hires schedule type"]) == ("DPM++ 2M", "Karras")


def test_typed_params():
    parsed = parse_infotext("a\n" + SPEC_LINE + ", Variation seed: 99, Variation seed strength: 0.25, Tiling: True")
    typed = typed_params(parsed)
    assert typed["Steps"] == 20 and type(typed["Steps"]) is int
    assert typed["CFG scale"] == 7.0 and type(typed["CFG scale"]) is float
    assert typed["Seed"] == 1234567890 and type(typed["Seed"]) is int
    assert (typed["Size-1"], typed["Size-2"]) == (512, 768)
    assert typed["Denoising strength"] == 0.5
    assert typed["Clip skip"] == 2 and type(typed["Clip skip"]) is int
    assert typed["Variation seed"] == 99
    assert typed["Variation seed strength"] == 0.25
    assert typed["Tiling"] is True
    assert typed["Hires resize-1"] == 0
    assert typed["Masked area padding"] == 32
    assert typed["Refiner switch by sampling steps"] is False
    assert typed["Sampler"] == "DPM++ 2M"
    assert typed["Model hash"] == "6ce0161689"
    # the input is not modified
    assert parsed["Steps"] == "20"


def test_typed_params_leaves_unconvertible_values():
    typed = typed_params({"Steps": "many", "CFG scale": "high", "Seed": "12.0", "Clip skip": "2.5"})
    assert typed == {"Steps": "many", "CFG scale": "high", "Seed": 12, "Clip skip": "2.5"}


# ---------------------------------------------------------------- EXIF UserComment


def test_encode_user_comment_matches_piexif_unicode_layout():
    assert encode_user_comment("Hi 猫") == b"UNICODE\x00\x00H\x00i\x00 \x73\x2b"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"UNICODE\x00" + "Steps: 20, 猫".encode("utf-16-be"), "Steps: 20, 猫"),
        (b"UNICODE\x00" + "Steps: 20, 猫".encode("utf-16-le"), "Steps: 20, 猫"),
        (b"UNICODE\x00\xff\xfe" + "bom le".encode("utf-16-le"), "bom le"),
        (b"UNICODE\x00\xfe\xff" + "bom be".encode("utf-16-be"), "bom be"),
        (b"ASCII\x00\x00\x00Steps: 20", "Steps: 20"),
        (b"JIS\x00\x00\x00\x00\x00" + "猫".encode("shift_jis"), "猫"),
        (b"\x00" * 8 + "undefined 猫".encode("utf-8"), "undefined 猫"),
        ("plain text, no prefix".encode("utf-8"), "plain text, no prefix"),
        (b"ASCII\x00\x00\x00padded\x00\x00", "padded"),
        (b"", ""),
    ],
)
def test_decode_user_comment(raw, expected):
    assert decode_user_comment(raw) == expected


def test_exif_block_has_undefined_typed_user_comment():
    block = exif_bytes_for("Steps: 1")
    assert block.startswith(b"Exif\x00\x00MM\x00\x2a")
    # tag 0x9286, type 7 (UNDEFINED), count = 8 + 2 * len(text)
    assert b"\x92\x86\x00\x07\x00\x00\x00\x18" in block
    assert block.endswith(b"UNICODE\x00" + "Steps: 1".encode("utf-16-be"))


# ---------------------------------------------------------------- image files


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp"])
def test_save_read_round_trip(tmp_path, suffix):
    target = tmp_path / f"image{suffix}"
    image = Image.new("RGB", (32, 24), (200, 30, 40))
    result = save_image_with_infotext(image, target, UNICODE_TEXT)
    assert result == target
    assert read_infotext(target) == UNICODE_TEXT
    assert read_infotext(str(target)) == UNICODE_TEXT
    with Image.open(target) as opened:
        assert read_infotext(opened) == UNICODE_TEXT
        assert opened.size == (32, 24)
    assert os.listdir(tmp_path) == [target.name]


def test_png_uses_text_chunk_latin1_and_itxt_otherwise(tmp_path):
    latin = tmp_path / "latin.png"
    wide = tmp_path / "wide.png"
    save_image_with_infotext(Image.new("RGB", (4, 4)), latin, "café\nSteps: 1, Seed: 2, CFG scale: 3")
    save_image_with_infotext(Image.new("RGB", (4, 4)), wide, "猫\nSteps: 1, Seed: 2, CFG scale: 3")
    assert b"tEXtparameters\x00caf\xe9\nSteps" in latin.read_bytes()
    assert b"iTXtparameters" in wide.read_bytes()
    assert read_infotext(latin) == "café\nSteps: 1, Seed: 2, CFG scale: 3"
    assert read_infotext(wide) == "猫\nSteps: 1, Seed: 2, CFG scale: 3"


def test_png_extra_text_chunks_are_kept(tmp_path):
    target = tmp_path / "extra.png"
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "p", extra_pnginfo={"postprocessing": "x"})
    with Image.open(target) as opened:
        assert opened.info["postprocessing"] == "x"
        assert opened.info["parameters"] == "p"


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_jpeg_webp_store_piexif_style_user_comment(tmp_path, suffix):
    target = tmp_path / f"c{suffix}"
    save_image_with_infotext(Image.new("RGB", (8, 8)), target, "猫, Steps: 1")
    with Image.open(target) as opened:
        comment = opened.getexif().get_ifd(0x8769)[0x9286]
    assert comment == b"UNICODE\x00" + "猫, Steps: 1".encode("utf-16-be")


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_reads_little_endian_user_comment_written_by_other_tools(fmt):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + "little endian, 猫".encode("utf-16-le")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=fmt, exif=exif)
    buffer.seek(0)
    with Image.open(buffer) as opened:
        assert read_infotext(opened) == "little endian, 猫"


def test_reads_ascii_user_comment():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00Steps: 5, Seed: 6, CFG scale: 7"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    assert read_infotext(buffer) == "Steps: 5, Seed: 6, CFG scale: 7"


def test_format_argument_overrides_suffix(tmp_path):
    target = tmp_path / "noext.bin"
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "abc", format="png")
    with Image.open(target) as opened:
        assert opened.format == "PNG"
    assert read_infotext(target) == "abc"
    jpg = tmp_path / "other.dat"
    save_image_with_infotext(Image.new("RGB", (4, 4)), jpg, "def", format="JPG")
    with Image.open(jpg) as opened:
        assert opened.format == "JPEG"
    assert read_infotext(jpg) == "def"


def test_rgba_is_converted_for_jpeg_and_kept_for_webp(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (1, 2, 3, 128))
    save_image_with_infotext(rgba, tmp_path / "a.jpg", "x")
    save_image_with_infotext(rgba, tmp_path / "a.webp", "y", lossless=True)
    save_image_with_infotext(rgba, tmp_path / "a.png", "z")
    with Image.open(tmp_path / "a.jpg") as opened:
        assert opened.mode == "RGB"
    with Image.open(tmp_path / "a.webp") as opened:
        assert opened.mode == "RGBA"
    with Image.open(tmp_path / "a.png") as opened:
        assert opened.mode == "RGBA"
    assert [read_infotext(tmp_path / n) for n in ("a.jpg", "a.webp", "a.png")] == ["x", "y", "z"]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_image_without_metadata_reads_none(tmp_path, suffix):
    plain = tmp_path / f"plain{suffix}"
    Image.new("RGB", (8, 8)).save(plain)
    assert read_infotext(plain) is None
    ours = tmp_path / f"ours{suffix}"
    save_image_with_infotext(Image.new("RGB", (8, 8)), ours, None)
    assert read_infotext(ours) is None


def test_in_memory_image_without_metadata_reads_none():
    assert read_infotext(Image.new("RGB", (2, 2))) is None


def test_jpeg_with_other_exif_but_no_comment_reads_none():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    assert read_infotext(buffer) is None


def test_gif_comment_is_read():
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, format="GIF", comment="gif, Steps: 1, Seed: 2")
    buffer.seek(0)
    assert read_infotext(buffer) == "gif, Steps: 1, Seed: 2"


def test_atomic_overwrite_leaves_no_temp_files(tmp_path):
    target = tmp_path / "same.png"
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "first")
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "second")
    assert read_infotext(target) == "second"
    assert os.listdir(tmp_path) == ["same.png"]


def test_failed_save_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "original")
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image_with_infotext(Image.new("RGB", (4, 4)), target, "replacement")
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert temp_names(tmp_path) == []
    assert os.listdir(tmp_path) == ["keep.png"]


def test_saved_file_gets_normal_permissions(tmp_path):
    target = tmp_path / "perm.png"
    save_image_with_infotext(Image.new("RGB", (4, 4)), target, "p")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unsupported_format_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        save_image_with_infotext(Image.new("RGB", (4, 4)), tmp_path / "x.bmp", "p")
    with pytest.raises(ValueError, match="unsupported"):
        save_image_with_infotext(Image.new("RGB", (4, 4)), tmp_path / "x.png", "p", format="GIF")
    assert os.listdir(tmp_path) == []


def test_too_long_infotext_for_jpeg_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="too long"):
        save_image_with_infotext(Image.new("RGB", (4, 4)), tmp_path / "long.jpg", "x" * 40000)
    assert os.listdir(tmp_path) == []
    # WebP has no such limit
    save_image_with_infotext(Image.new("RGB", (4, 4)), tmp_path / "long.webp", "x" * 40000)
    assert read_infotext(tmp_path / "long.webp") == "x" * 40000


def test_full_pipeline_build_save_read_parse(tmp_path):
    text = build_infotext("a cat, 猫", "ugly", spec_params_shuffled())
    for suffix in (".png", ".jpg", ".webp"):
        target = tmp_path / f"pipe{suffix}"
        save_image_with_infotext(Image.new("RGB", (8, 8)), target, text)
        parsed = typed_params(parse_infotext(read_infotext(target)))
        assert parsed["Prompt"] == "a cat, 猫"
        assert parsed["Negative prompt"] == "ugly"
        assert parsed["Seed"] == 1234567890
        assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54"


@pytest.mark.parametrize("module", [infotext, image_files])
def test_module_has_no_heavy_imports(module):
    source = open(module.__file__, encoding="utf-8").read()
    for name in ("import torch", "import gradio", "import piexif", "import numpy"):
        assert name not in source
