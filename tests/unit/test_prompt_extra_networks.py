"""Extra-network tags: removed from the text, parsed with A1111's argument rules."""

import pytest

from webui.engine.prompts.extra_networks import ExtraNetworkError, extract_extra_networks


def test_tags_removed_text_otherwise_untouched():
    text, nets = extract_extra_networks("a cat, <lora:detail:0.5>, (sharp:1.2) <hypernet:anime:0.7>")
    assert text == "a cat, , (sharp:1.2) "
    assert [(n.kind, n.name) for n in nets] == [("lora", "detail"), ("hypernet", "anime")]


def test_lora_weights():
    _, nets = extract_extra_networks(
        "<lora:a> <lora:b:0.5> <lora:c:0.3:0.7> <lora:d:te=0.2:unet=0.9> <lora:e:0.4:unet=0.1> <lora:f:1:1:8>"
    )
    got = {n.name: (n.te_multiplier, n.unet_multiplier) for n in nets}
    assert got == {
        "a": (1.0, 1.0),
        "b": (0.5, 0.5),  # unet defaults to te
        "c": (0.3, 0.7),
        "d": (0.2, 0.9),
        "e": (0.4, 0.1),
        "f": (1.0, 1.0),
    }
    assert nets[-1].dyn_dim == 8
    assert nets[0].dyn_dim is None
    assert nets[2].items == ("c", "0.3", "0.7")


def test_lyco_is_lora_and_unknown_kinds_are_removed_too():
    text, nets = extract_extra_networks("x <lyco:old:0.6> <somenet:thing:2> y")
    assert text == "x   y"
    assert (nets[0].kind, nets[0].name, nets[0].multiplier) == ("lora", "old", 0.6)
    assert nets[0].tag == "<lyco:old:0.6>"
    assert (nets[1].kind, nets[1].name, nets[1].multiplier) == ("somenet", "thing", 2.0)


def test_hypernet_multiplier_default():
    _, nets = extract_extra_networks("<hypernet:h>")
    assert nets[0].multiplier == 1.0


def test_not_a_tag():
    text, nets = extract_extra_networks("a <b> <:x> <lora:> <lora x:1>")
    assert nets == [] and text == "a <b> <:x> <lora:> <lora x:1>"


def test_bad_weight_is_a_clear_error():
    with pytest.raises(ExtraNetworkError, match=r"<lora:x:abc>.*'abc' is not a number"):
        extract_extra_networks("a <lora:x:abc>")
