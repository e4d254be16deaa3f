"""Prompt language through the engine: styles, wildcards, emphasis and editing reach the pixels and the infotext."""
import numpy as np

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest


def req(**kw):
    return GenerationRequest(**{"steps": 3, "width": 64, "height": 64, "seed": 9, "sampler_name": "Euler", **kw})


def px(im):
    return np.asarray(im, dtype=np.float32)


def test_styles_are_applied_in_order_and_listed(engine):
    engine.styles.create("warm", "{prompt}, warm light", "cold")
    engine.styles.create("sharp", "sharp focus", "blurry")
    r = engine.generate(req(prompt="a cat", styles=["warm", "sharp"]))
    info = parse_infotext(read_infotext(r.paths[0]))
    assert info["Prompt"] == "a cat, warm light, sharp focus"
    assert info["Negative prompt"] == "cold, blurry"
    assert info["Styles array"] == ["warm", "sharp"] or info["Styles array"] == '["warm", "sharp"]'
    plain = engine.generate(req(prompt="a cat, warm light, sharp focus", negative_prompt="cold, blurry")).images[0]
    assert np.array_equal(px(plain), px(r.images[0]))


def test_wildcards_expand_per_seed_and_reproduce(engine):
    folder = engine.settings.wildcards_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "colour.txt").write_text("red\ngreen\nblue\nyellow\npurple\norange\n")
    r = engine.generate(req(prompt="a __colour__ circle", batch_size=4, seed=100))
    assert all(p.startswith("a ") and p.endswith(" circle") and "__" not in p for p in r.prompts)
    assert len(set(r.prompts)) > 1
    info = parse_infotext(r.infotexts[0])
    assert info["Template"] == "a __colour__ circle" and info["Prompt"] == r.prompts[0]
    again = engine.generate(req(prompt="a __colour__ circle", seed=102))
    assert again.prompts[0] == r.prompts[2]
    assert np.abs(px(again.images[0]) - px(r.images[2])).max() <= 2


def test_missing_wildcard_is_reported_not_a_crash(engine):
    r = engine.generate(req(prompt="a __nope__ circle"))
    assert len(r.images) == 1
    assert any("nope" in w for w in r.warnings)


def test_combinatorial_mode_makes_one_image_per_combination(engine):
    r = engine.generate(req(prompt="a {red|green|blue} circle", combinatorial=True, batch_size=2))
    assert sorted(r.prompts) == ["a blue circle", "a green circle", "a red circle"]
    assert r.seeds == [9, 10, 11]


def test_emphasis_and_editing_change_the_picture(engine):
    base = px(engine.generate(req(prompt="red circle")).images[0])
    weighted = px(engine.generate(req(prompt="(red:1.8) circle")).images[0])
    edited = px(engine.generate(req(prompt="[blue:red:2] circle", steps=4)).images[0])
    plain4 = px(engine.generate(req(prompt="red circle", steps=4)).images[0])
    assert np.abs(weighted - base).mean() > 0.2
    assert np.abs(edited - plain4).mean() > 0.2


def test_token_counter(engine):
    assert engine.token_count("a photo of a cat") == (5, 75)
    assert engine.token_count("a photo of a cat <lora:x:1>") == (5, 75)
    count, limit = engine.token_count(", ".join(["word"] * 60))
    assert count > 75 and limit == 150


def test_comments_are_dropped_from_prompts_counter_and_infotext(engine):
    r = engine.generate(req(prompt="# lighting test\na cat # try a dog later\n, warm light", negative_prompt="blurry # x"))
    assert r.prompts == ["a cat \n, warm light"]
    info = parse_infotext(r.infotexts[0])
    assert info["Prompt"] == "a cat\n, warm light" and info["Negative prompt"] == "blurry"  # lines come back stripped
    plain = engine.generate(req(prompt="a cat \n, warm light", negative_prompt="blurry ")).images[0]
    assert np.array_equal(px(plain), px(r.images[0]))
    assert engine.token_count("a photo # of a cat") == engine.token_count("a photo")
