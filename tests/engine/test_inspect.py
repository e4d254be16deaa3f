"""Inspect (issue 21) on the engine: the token view is the encoder's own chunking, hooks exist only for inspect
runs and are removed after them, attention maps stay at latent resolution, a walk's end frames are the plain
generations. The tests of meaning on the built-in model are in test_inspect_builtin.py."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from webui.engine import InspectRequest, RequestError
from webui.engine.inspect.attention import AttentionMaps, CaptureProcessor


class Owner:
    name = "test"
    active = True


def _req(engine, **fields):
    base = {"prompt": "a red circle", "seed": 11, "steps": 3, "sampler_name": "Euler", "width": 64, "height": 64}
    return engine.request_defaults(**{**base, **fields})


def test_token_view_of_a_long_prompt_with_break_is_the_encoders_chunking(engine):
    from webui.engine.generation import prompt_encoder

    text = ("a (red:1.3) circle, " * 30).strip(", ") + " BREAK [blue] square BREAK BREAK green"
    view = engine.inspect_tokens(text)
    enc = prompt_encoder(engine.active_model())
    chunks = enc.tokenize(text)
    assert view.ids() == [c.tokens for c in chunks]  # the very ids and chunks the encoder used
    assert [[t.weight for t in c.tokens] for c in view.chunks] == [c.multipliers for c in chunks]
    assert enc.encode([text]).chunks == len(view.chunks) == 5  # 2 for the long part, then BREAKs
    assert [c.ended_by_break for c in view.chunks] == [False, True, True, True, False]
    for c in view.chunks:
        assert len(c.tokens) == 77 and c.tokens[0].kind == "bos"
        kinds = [t.kind for t in c.tokens]
        first_eos = kinds.index("eos")
        assert set(kinds[1:first_eos]) <= {"word", "embedding"} and set(kinds[first_eos + 1:]) <= {"pad"}
    words = view.prompt_tokens()
    red = [t for t in words if t.word == "red"]
    assert red and all(t.weight == pytest.approx(1.3) for t in red)
    assert [t.word for t in view.chunks[2].tokens[1:3]] == ["blue", "square"]
    assert view.chunks[2].tokens[1].weight == pytest.approx(1 / 1.1)
    assert view.chunks[3].used == 0 and view.chunks[4].tokens[1].word == "green"
    assert (view.count, view.limit) == enc.token_count(text)
    assert view.as_dict()["chunks"][1]["ended_by_break"] is True


def test_plain_generation_installs_no_hooks_and_inspect_restores_them(engine):
    seen: list[set] = []

    def look(state, step_index, latents):
        unet = engine.active_model().components["unet"]
        seen.append({type(p).__name__ for p in unet.attn_processors.values()})

    engine.hooks.add("step", look, 0, Owner())
    plain_image = engine.generate(_req(engine)).images[0]
    plain, seen[:] = list(seen), []
    assert plain and all("CaptureProcessor" not in s for s in plain)
    unet = engine.active_model().components["unet"]
    before = dict(unet.attn_processors)
    res = engine.inspect(InspectRequest(_req(engine), attention_layers=["up"], save=False))
    assert seen and all("CaptureProcessor" in s for s in seen)
    after = unet.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)  # restored
    assert res.attention_info["layers"] and all(n.startswith("up_blocks") for n in res.attention_info["layers"])
    assert np.array_equal(np.asarray(res.image), np.asarray(plain_image))  # capture never changes the image


def test_inspect_records_every_step_and_maps_at_latent_resolution(engine):
    res = engine.inspect(InspectRequest(_req(engine, steps=4), attention_steps=[2, 3], save=False))
    assert [s.step for s in res.steps] == [1, 2, 3, 4]
    sig = res.sigmas()
    assert all(a > b for a, b in itertools.pairwise(sig))  # the noise level falls step by step
    assert res.steps[-1].distance == 0.0 and res.steps[0].distance > 0
    assert res.steps[0].x0.size == (64, 64) and res.steps[0].noisy.size == (64, 64)
    words = [m.token.word for m in res.attention]
    assert words == ["a", "red", "circle"]
    maps = res.maps()
    assert maps.shape == (3, 8, 8) and np.isfinite(maps).all() and (maps > 0).all()
    info = res.attention_info
    assert info["steps"] == [2, 3] and info["latent_size"] == [8, 8]
    assert info["calls"] == 2 * len(info["layers"])  # only the chosen steps
    assert info["bytes"] == res.tokens.chunks.__len__() * 77 * 8 * 8 * 4  # one running sum, whatever the steps
    assert sum(m.mass for m in res.attention) == pytest.approx(1.0)


def test_walk_end_frames_equal_the_plain_generations(engine):
    req = _req(engine, prompt="a red circle", seed=5)
    res = engine.inspect(InspectRequest(req, record_steps=False, attention=False, walk_to_seed=9,
                                        walk_to_prompt="a blue square", walk_frames=3, save=False))
    assert [f.t for f in res.walk] == [0.0, 0.5, 1.0] and [f.seed for f in res.walk] == [5, 5, 9]
    start = engine.generate(_req(engine, prompt="a red circle", seed=5)).images[0]
    end = engine.generate(_req(engine, prompt="a blue square", seed=9)).images[0]
    arr = lambda im: np.asarray(im, dtype=np.int16)
    assert np.array_equal(arr(res.walk[0].image), arr(start))
    assert np.array_equal(arr(res.walk[-1].image), arr(end))
    middle = arr(res.walk[1].image)
    assert not np.array_equal(middle, arr(start)) and not np.array_equal(middle, arr(end))
    assert "Variation seed: 9, Variation seed strength: 0.5" in res.walk[1].infotext
    assert 'Prompt walk: "0.5 to \\"a blue square\\""' in res.walk[1].infotext or "Prompt walk: 0.5 to" in \
        res.walk[1].infotext
    webp = res.walk_animation()
    from io import BytesIO

    from PIL import Image

    anim = Image.open(BytesIO(webp))
    assert anim.format == "WEBP" and anim.n_frames == 4  # 3 frames and back (ping-pong without repeats)


def test_prompt_walk_alone_interpolates_the_conditioning(engine):
    req = _req(engine, prompt="a red circle", seed=5)
    res = engine.inspect(InspectRequest(req, record_steps=False, attention=False,
                                        walk_to_prompt="a blue square " * 40, walk_frames=3, save=False))
    assert [f.seed for f in res.walk] == [5, 5, 5] and "Variation seed" not in res.walk[1].infotext
    assert len({np.asarray(f.image).tobytes() for f in res.walk}) == 3


def test_results_are_saved_with_infotext(engine):
    from webui.engine.image_files import read_infotext

    res = engine.inspect(InspectRequest(_req(engine), walk_to_seed=12, walk_frames=2))
    assert res.path is not None and "inspect-images" in str(res.path)
    assert read_infotext(res.path) == res.infotext
    assert set(res.saved) == {"steps", "steps_animation", "noise", "attention", "walk", "walk_animation"}
    for kind in ("steps", "noise", "attention", "walk"):
        assert read_infotext(res.saved[kind]).startswith(res.infotext)
    assert all(p.exists() for p in res.saved.values())


@pytest.mark.parametrize("change, message", [
    ({"batch_size": 2}, "batch_size"),
    ({"enable_hr": True}, "hires"),
])
def test_bad_requests_fail_before_the_queue(engine, change, message):
    with pytest.raises(RequestError, match=message):
        engine.submit_inspect(InspectRequest(_req(engine, **change)))


@pytest.mark.parametrize("options, message", [
    ({"attention_layers": ["sideways"]}, "attention_layers"),
    ({"attention_steps": [0, 9]}, "attention_steps"),
    ({"walk_to_seed": 3, "walk_frames": 1}, "walk_frames"),
    ({"decode": "fancy"}, "decode"),
    ({"walk_to_prompt": "a [red:blue:2] square"}, "prompt editing"),
])
def test_bad_inspect_options_are_named(engine, options, message):
    with pytest.raises(RequestError, match=message):
        engine.submit_inspect(InspectRequest(_req(engine), **options))


def test_unknown_layer_name_is_a_request_error(engine):
    with pytest.raises(RequestError, match="not found"):
        engine.inspect(InspectRequest(_req(engine), attention_layer_names=["nope.attn2.processor"], save=False))
    unet = engine.active_model().components["unet"]
    assert not any(isinstance(p, CaptureProcessor) for p in unet.attn_processors.values())


def test_attention_maps_average_as_they_arrive():
    maps = AttentionMaps((8, 8), tokens=77, rows=slice(1, 2))
    g = torch.Generator().manual_seed(0)
    calls = []
    for q in (64, 16, 4):  # 8x8, 4x4, 2x2 layers; batch 2 (CFG), 3 heads
        probs = torch.rand(2 * 3, q, 77, generator=g).softmax(-1)
        maps.add(probs, batch=2, heads=3)
        side = int(q ** 0.5)
        pos = probs.view(2, 3, q, 77)[1].mean(0).T.reshape(1, 77, side, side)
        calls.append(torch.nn.functional.interpolate(pos, size=(8, 8), mode="bilinear", align_corners=False)[0])
    assert maps.count == 3 and maps.total.shape == (77, 8, 8)
    torch.testing.assert_close(maps.mean(), torch.stack(calls).mean(0))
    assert maps.nbytes == 77 * 64 * 4
