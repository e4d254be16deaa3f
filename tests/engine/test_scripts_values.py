"""The X/Y/Z plot's value syntax (A1111's), the argument layouts and the pure helpers of the scripts: no model."""
from __future__ import annotations

import pytest
from webui.engine.requests import GenerationRequest, RequestError
from webui.engine.scripts.prompts_from_file import joined, parse_line
from webui.engine.scripts.xyz_axes import apply_order, axes_for, find_axis
from webui.engine.scripts.xyz_plot import current_layout, to_csv
from webui.engine.scripts.xyz_values import MAX_VALUES, float_values, int_values, split_values


@pytest.mark.parametrize("text, expected", [
    ("1-5", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", [1, 3, 5, 7, 9]),
    ("1-10(+3)", [1, 4, 7, 10]),
    ("10-20 [5]", [10, 12, 15, 17, 20]),
    ("1, 2, 5", [1, 2, 5]),
    ("1-3, 7, 10-12", [1, 2, 3, 7, 10, 11, 12]),
    ("-1, 5", [-1, 5]),
    ("10-1 (-3)", [10, 7, 4, 1]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("3-3", [3]),
    ("0-100 [1]", [0]),
    ("7.0", [7]),
])
def test_int_values(text, expected):
    assert int_values(split_values(text)) == expected


@pytest.mark.parametrize("text, expected", [
    ("1-2 (+0.5)", [1.0, 1.5, 2.0]),
    ("0.25-1 (+0.25)", [0.25, 0.5, 0.75, 1.0]),
    ("1-10 [4]", [1.0, 4.0, 7.0, 10.0]),
    ("3.5, 7, 12.25", [3.5, 7.0, 12.25]),
    ("0-1", [0.0, 1.0]),
    ("0.1-0.3 (+0.1)", [0.1, 0.2, 0.3]),
])
def test_float_values(text, expected):
    assert float_values(split_values(text)) == expected


def test_csv_quoting_keeps_commas_and_drops_empty_values():
    assert split_values('a, "b, c", d,,  ') == ["a", "b, c", "d"]
    assert split_values('"Euler a", DPM++ 2M') == ["Euler a", "DPM++ 2M"]
    assert split_values("") == []
    assert split_values(to_csv(["x, y", "z"])) == ["x, y", "z"]


@pytest.mark.parametrize("bad", ["abc", "1-x", "1.5", "1-5 (+0)"])
def test_bad_int_values_are_refused_by_name(bad):
    with pytest.raises(RequestError) as err:
        int_values(split_values(bad))
    assert bad.split(",")[0].strip() in str(err.value)


@pytest.mark.parametrize("bad", ["nan", "inf", "x"])
def test_bad_float_values_are_refused(bad):
    with pytest.raises(RequestError):
        float_values([bad])


def test_a_range_cannot_make_a_huge_list():
    with pytest.raises(RequestError, match=str(MAX_VALUES)):
        int_values(["1-1000000000"])
    with pytest.raises(RequestError, match=str(MAX_VALUES)):
        float_values(["0-1 [100000]"])
    with pytest.raises(RequestError):
        float_values(["0-1000000 (+0.001)"])


def test_axis_lists_have_a1111s_indexes():
    txt, img = [a.label for a in axes_for("txt2img")], [a.label for a in axes_for("img2img")]
    assert txt[:12] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale",
                        "Prompt S/R", "Prompt order", "Sampler", "Hires sampler", "Checkpoint name"]
    assert txt[17] == "Schedule type" and "Image CFG Scale" not in txt and "Hires upscaler" in txt
    assert img[:10] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale", "Image CFG Scale",
                        "Prompt S/R", "Prompt order", "Sampler"]
    assert "Hires steps" not in img and "Cond. Image Mask Weight" in img
    assert find_axis("txt2img", 11).label == "Checkpoint name" and find_axis("img2img", "cfg scale").label == "CFG Scale"
    assert find_axis("txt2img", "4").label == "Steps"
    with pytest.raises(RequestError, match="not found"):
        find_axis("txt2img", 999)


def test_old_clients_argument_layouts_are_read_by_length():
    old16 = [1, "1,2", [], 0, "", [], 0, "", [], True, False, False, False, 4, False, False]
    new = current_layout(old16)
    assert len(new) == 18 and new[13:16] == [False, False, False] and new[16] == 4 and new[17] is False
    assert current_layout(list(range(18))) == list(range(18))


def test_prompt_order_puts_the_tokens_in_the_given_order():
    req = GenerationRequest(prompt="a red circle, large, on blue")
    out = apply_order(req, ("large", "red", "blue"), [])
    assert out.prompt == "a large circle, red, on blue"


def test_prompts_from_file_line_syntax():
    assert parse_line("a red circle at the top") == {"prompt": "a red circle at the top"}
    tags = parse_line('--prompt "a blue square" --negative_prompt red green --steps 10 --seed 5 --cfg_scale 4.5 '
                      '--tiling true --restore_faces false --width 128 --do_not_save_samples true')
    assert tags == {"prompt": "a blue square", "negative_prompt": "red green", "steps": 10, "seed": 5,
                    "cfg_scale": 4.5, "tiling": True, "restore_faces": False, "width": 128, "save_images": False}
    assert parse_line("a cat -- with a hat") == {"prompt": "a cat -- with a hat"}  # not the tag syntax: a prompt
    for bad in ('--steps many', '--prompt "unclosed', '--steps', '--no_such_tag 1'):
        with pytest.raises(RequestError, match="line"):
            parse_line(bad)
    assert joined("x", "base", "start") == "x base" and joined("x", "base", "end") == "base x"
    assert joined("x", "", "end") == "x" and joined("", "base", "end") == "base"


def test_many_ranges_and_huge_numbers_are_refused_not_built():
    import pytest

    from webui.engine.requests import RequestError
    from webui.engine.scripts.xyz_values import float_values, int_values, split_values

    with pytest.raises(RequestError, match="at most 1000"):
        int_values(split_values(",".join(["1-1000"] * 50)))
    with pytest.raises(RequestError, match="at most 1000"):
        float_values(["0-1 [900]", "0-1 [900]"])
    for bad in ("1e400", "9" * 500 + "-1", "1-" + "9" * 5000):
        with pytest.raises(RequestError):
            float_values([bad])
        with pytest.raises(RequestError):
            int_values([bad])
