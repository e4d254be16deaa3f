"""A1111 emphasis parsing: weights, nesting, escapes, unbalanced brackets, BREAK."""

import pytest

from webui.engine.prompts.attention import parse_prompt_attention


def test_spec_example_exact_a1111_list():
    assert parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).") == [
        ("a ", 1.0),
        ("house", 1.5730000000000004),  # 1.3 * 1.1 * 1.1, multiplied in A1111's order
        (" ", 1.1),
        ("on", 1.0),  # [on] inside (...): 1.1 / 1.1
        (" a ", 1.1),
        ("hill", 0.55),
        (", sun, ", 1.1),
        ("sky", 1.4641000000000006),
        (".", 1.1),
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("[less]", [("less", 1 / 1.1)]),
        ("(x:0.25)", [("x", 0.25)]),
        ("(x: 1.5 )", [("x", 1.5)]),  # spaces around the weight
        ("(x:-1)", [("x", -1.0)]),
        ("((x:2):3)", [("x", 6.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),  # closed at the end
        ("[unbalanced", [("unbalanced", 1 / 1.1)]),
        ("a) b]", [("a) b]", 1.0)]),  # closers without openers are text
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),  # equal weights merge
        ("", [("", 1.0)]),
        ("(a:b)", [("a:b", 1.1)]),  # not a number: the colon is text
    ],
)
def test_weights(text, expected):
    assert parse_prompt_attention(text) == expected


def test_escapes_are_literal():
    assert parse_prompt_attention(r"\(literal\]") == [("(literal]", 1.0)]
    assert parse_prompt_attention(r"\[a\) \\ (b)") == [("[a) \\ ", 1.0), ("b", 1.1)]
    assert parse_prompt_attention(r"(\(x\):1.5)") == [("(x)", 1.5)]


def test_break_marker():
    assert parse_prompt_attention("a cat BREAK a dog") == [("a cat", 1.0), ("BREAK", -1.0), ("a dog", 1.0)]
    # A1111 quirk kept: inside brackets the marker's weight is multiplied too, so it is no longer -1
    # and the encoder treats it as the word "BREAK"
    assert parse_prompt_attention("(red BREAK blue:1.2)") == [("red", 1.2), ("BREAK", -1.2), ("blue", 1.2)]
    # only the uppercase word on its own
    assert parse_prompt_attention("break BREAKING Break") == [("break BREAKING Break", 1.0)]
    assert parse_prompt_attention("aBREAK b") == [("aBREAK b", 1.0)]
