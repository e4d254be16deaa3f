"""Prompt editing and alternation schedules (A1111 v1.10 get_learned_conditioning_prompt_schedules)."""

import pytest

from webui.engine.prompts.schedule import prompt_schedule, prompt_schedules, text_at, text_index_at


def g(prompt, steps=10, **kw):
    return [list(x) for x in prompt_schedule(prompt, steps, **kw)]


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("test", [[10, "test"]]),
        ("a [b:3]", [[3, "a "], [10, "a b"]]),
        ("a [b: 3]", [[3, "a "], [10, "a b"]]),
        ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
        ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
        ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
        ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
        ("a [unbalanced", [[10, "a [unbalanced"]]),
        ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
        ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
        ("[a:b::3]", [[10, "[a:b::3]"]]),  # not a construct: literal
        ("[a:b:15]", [[10, "a"]]),  # capped at steps
        ("[a:b:0]", [[10, "b"]]),  # below 1: never a boundary, always "to"
    ],
)
def test_a1111_examples(prompt, expected):
    assert g(prompt) == expected


def test_fraction_and_integer_when():
    assert g("[cat:dog:0.5]") == [[5, "cat"], [10, "dog"]]
    assert g("[cat:dog:5]") == [[5, "cat"], [10, "dog"]]
    assert g("[cat:dog:0.25]", 20) == [[5, "cat"], [20, "dog"]]
    assert g("[cat:dog:1.0]", 20) == [[20, "cat"]]  # "." -> fraction: the whole run
    assert g("[cat:dog:1]", 20) == [[1, "cat"], [20, "dog"]]  # integer: step 1
    assert g("[cat::0.3]", 10) == [[3, "cat"], [10, ""]]  # removal
    assert g("[ big:0.3] house", 10) == [[3, " house"], [10, " big house"]]  # addition


def test_readme_example_100_steps():
    prompt = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
        "[ in foreground::0.6][: in background:0.25] [shoddy:masterful:0.5]"
    )
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_alternation():
    assert g("[a|(b:1.1)]", 4) == [[1, "a"], [2, "(b:1.1)"], [3, "a"], [4, "(b:1.1)"]]
    assert g("[cow|horse|cat] x", 4) == [[1, "cow x"], [2, "horse x"], [3, "cat x"], [4, "cow x"]]
    assert g("[fe|]male", 3) == [[1, "female"], [2, "male"], [3, "female"]]
    assert g("[fe|||]male", 5) == [[1, "female"], [2, "male"], [3, "male"], [4, "male"], [5, "female"]]


def test_nesting_editing_inside_alternation():
    assert g("[[a:b:2]|c]", 4) == [[1, "a"], [2, "c"], [3, "b"], [4, "c"]]


def test_unparseable_prompt_is_literal():
    # a "|" outside [..|..] makes A1111's parser fail: the whole prompt is used as written
    assert g("a | b [c:d:3]") == [[10, "a | b [c:d:3]"]]
    assert g("(a|b) [c:d:3]") == [[10, "(a|b) [c:d:3]"]]
    assert g("trailing backslash \\") == [[10, "trailing backslash \\"]]


def test_hires_pass_offsets():
    assert g("a [b:.5] c", 10, hires_steps=10) == [[10, "a b c"]]
    assert g("a [b:1.5] c", 10, hires_steps=10) == [[5, "a  c"], [10, "a b c"]]
    assert g("[x:y:15]", 10, hires_steps=10) == [[5, "x"], [10, "y"]]
    assert g("[x:y:3]", 10, hires_steps=10) == [[10, "y"]]


def test_old_scheduling_rule():
    assert g("[x:y:0.5]", 10, use_old_scheduling=True) == [[5, "x"], [10, "y"]]
    assert g("[x:y:1.0]", 10, use_old_scheduling=True) == [[1, "x"], [10, "y"]]  # >= 1: a step


def test_many_prompts_share_parses():
    assert prompt_schedules(["a", "[b:c:2]", "a"], 4) == [[(4, "a")], [(2, "b"), (4, "c")], [(4, "a")]]


def test_step_lookup_is_a1111s_zero_based_counter():
    schedule = prompt_schedule("[a:b:3]", 10)
    # A1111's denoiser counter starts at 0 and uses the first entry with counter <= end
    assert [text_at(schedule, i) for i in range(10)] == ["a"] * 4 + ["b"] * 6
    alternating = prompt_schedule("[a|b]", 6)
    assert [text_at(alternating, i) for i in range(6)] == ["a", "a", "b", "a", "b", "a"]
    assert text_index_at(schedule, 99) == 0  # past the end: A1111 falls back to the first entry
