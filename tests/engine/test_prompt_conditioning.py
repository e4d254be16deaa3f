"""Scheduled conditioning through a real (tiny) diffusers pipeline: which embedding each UNet call gets."""

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from tests.fixtures.tiny_models import make_tiny_pipeline
from webui.engine.prompts.conditioning import build_conditioning
from webui.engine.prompts.encoder import PromptEncoder


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(family):
    pipe = make_tiny_pipeline(family, seed=5)
    # one UNet call per step (the SD1 fixture's PNDM makes an extra warm-up call)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if family == "sdxl":
        enc = PromptEncoder([pipe.tokenizer, pipe.tokenizer_2], [pipe.text_encoder, pipe.text_encoder_2], family)
    else:
        enc = PromptEncoder([pipe.tokenizer], [pipe.text_encoder], family)
    return pipe, enc


@pytest.fixture(scope="module")
def sd1():
    return _setup("sd1")


@pytest.fixture(scope="module")
def sdxl():
    return _setup("sdxl")


def run_and_record(pipe, cond, steps, guidance=5.0):
    """Run the pipeline; return the encoder_hidden_states (and SDXL text_embeds) of every UNet call."""
    seen = []

    def hook(module, args, kwargs):
        added = kwargs.get("added_cond_kwargs") or {}
        pooled = added.get("text_embeds")
        seen.append((kwargs["encoder_hidden_states"].clone(), None if pooled is None else pooled.clone()))

    def on_step_end(p, i, t, callback_kwargs):
        return cond.step_update(i, callback_kwargs, p.do_classifier_free_guidance)

    handle = pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        pipe(
            **cond.pipeline_kwargs(),
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=64,
            width=64,
            output_type="latent",
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=cond.callback_tensor_inputs(),
        )
    finally:
        handle.remove()
    return seen


def which(tensor, refs):
    names = [name for name, ref in refs.items() if tensor.shape == ref.shape and torch.allclose(tensor, ref, atol=1e-6)]
    assert len(names) == 1, names
    return names[0]


def test_switch_steps_fraction_integer_and_alternation_sd1(sd1):
    pipe, enc = sd1
    steps = 8
    prompts = ["a [cat:dog:0.25] x", "a [cat:dog:3] x", "[red|blue|green] car"]
    cond = build_conditioning(enc, prompts, ["ugly"], steps, clip_skip=1)
    assert cond.has_schedule
    refs = {t: enc.encode([t]).embeds for t in ["a cat x", "a dog x", "red car", "blue car", "green car", "ugly"]}
    seen = run_and_record(pipe, cond, steps)
    assert len(seen) == steps
    used = [[which(ehs[b : b + 1], refs) for b in range(6)] for ehs, _ in seen]
    negatives = [row[:3] for row in used]
    assert all(n == ["ugly"] * 3 for n in negatives)  # CFG batch: negative first
    # A1111: 0-based call counter k uses the first entry with k <= end_at_step
    # 0.25 * 8 = 2 -> "cat" for calls 0..2
    assert [row[3] for row in used] == ["a cat x"] * 3 + ["a dog x"] * 5
    # integer 3 -> "cat" for calls 0..3
    assert [row[4] for row in used] == ["a cat x"] * 4 + ["a dog x"] * 4
    # alternation: entries end at 1, 2, 3 ... so call 0 and 1 both use the first option
    assert [row[5] for row in used] == [
        "red car", "red car", "blue car", "green car", "red car", "blue car", "green car", "red car"
    ]


def test_switch_sdxl_updates_pooled_too(sdxl):
    pipe, enc = sdxl
    steps = 4
    cond = build_conditioning(enc, ["[a cat|a dog]"], [""], steps, clip_skip=1)
    cat, dog = enc.encode(["a cat"]), enc.encode(["a dog"])
    seen = run_and_record(pipe, cond, steps)
    assert len(seen) == steps
    for k, (ehs, pooled) in enumerate(seen):
        assert not ehs[0].any() and not pooled[0].any()  # empty negative: zeros (A1111 / diffusers)
        want = cat if k in (0, 1, 3) else dog  # calls 0,1 -> entry 1, call 2 -> entry 2, call 3 -> entry 3
        torch.testing.assert_close(ehs[1:], want.embeds, rtol=0, atol=1e-6)
        torch.testing.assert_close(pooled[1:], want.pooled, rtol=0, atol=1e-6)


def test_without_cfg_only_positive_is_swapped(sd1):
    pipe, enc = sd1
    cond = build_conditioning(enc, ["[cat:dog:1]"], [""], 3)
    seen = run_and_record(pipe, cond, 3, guidance=1.0)
    refs = {t: enc.encode([t]).embeds for t in ["cat", "dog"]}
    assert [which(ehs, refs) for ehs, _ in seen] == ["cat", "cat", "dog"]


def test_plain_prompt_matches_diffusers_and_has_no_schedule(sd1, sdxl):
    pipe, enc = sd1
    cond = build_conditioning(enc, ["a photo of a cat"], [""], 20)
    assert not cond.has_schedule
    assert cond.step_update(3, {}, True) == {}
    with torch.no_grad():
        pos, neg = pipe.encode_prompt("a photo of a cat", "cpu", 1, True)
    kwargs = cond.pipeline_kwargs()
    assert torch.equal(kwargs["prompt_embeds"], pos) and torch.equal(kwargs["negative_prompt_embeds"], neg)

    xl, xenc = sdxl
    xcond = build_conditioning(xenc, ["a photo of a cat"], [""], 20)
    with torch.no_grad():
        ref = xl.encode_prompt("a photo of a cat", device="cpu")
    got = xcond.pipeline_kwargs()
    for key, value in zip(
        ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"], ref
    ):
        assert torch.equal(got[key], value), key


def test_prompt_and_negative_padded_to_same_length(sd1, sdxl):
    pipe, enc = sd1
    long = " ".join(["cat"] * 100)
    cond = build_conditioning(enc, [long, "short"], ["", " ".join(["dog"] * 160)], 10)
    kwargs = cond.pipeline_kwargs()
    assert kwargs["prompt_embeds"].shape == kwargs["negative_prompt_embeds"].shape == (2, 231, 64)
    empty = enc.encode([""]).embeds
    # short ones are padded with the empty prompt's chunk
    torch.testing.assert_close(kwargs["prompt_embeds"][1:, 77:154], empty, rtol=0, atol=1e-6)
    torch.testing.assert_close(kwargs["negative_prompt_embeds"][:1, 154:], empty, rtol=0, atol=1e-6)
    assert len(run_and_record(pipe, cond, 2)) == 2  # the pipeline accepts them

    xl, xenc = sdxl
    xcond = build_conditioning(xenc, [long], [""], 10)
    xk = xcond.pipeline_kwargs()
    assert xk["prompt_embeds"].shape == xk["negative_prompt_embeds"].shape == (1, 154, 192)
    assert not xk["negative_prompt_embeds"].any()  # zero negative stays zero


def test_each_distinct_prompt_encoded_once(sd1, monkeypatch):
    _, enc = sd1
    calls = []
    original = enc.encode_distinct

    def counting(texts, *args, **kwargs):
        calls.append(list(texts))
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(enc, "encode_distinct", counting)
    cond = build_conditioning(enc, ["[a|b] c", "[a|b] c", "d"], ["n", "n", "n"], 20)
    assert sorted(len(c) for c in calls) == [1, 1, 20]  # schedule texts of a prompt go in one batch...
    assert cond.batch_size == 3
    # ...but the 20 texts of "[a|b] c" hold only 2 distinct embeddings
    entries = cond.positive[0]
    assert len(entries) == 20 and entries[0].embeds.data_ptr() == entries[2].embeds.data_ptr()


def test_hires_schedule_and_repeat(sd1):
    _, enc = sd1
    cond = build_conditioning(enc, ["[cat:dog:1.5]"], [""], 10, hires_steps=10, num_images_per_prompt=2)
    assert [e.end_at_step for e in cond.positive[0]] == [5, 10]
    update = cond.step_update(4, {}, do_cfg=True)  # step 5 (0-based) still "cat", step 6 "dog"
    assert update == {}
    update = cond.step_update(5, {}, do_cfg=True)
    assert update["prompt_embeds"].shape == (4, 77, 64)  # [neg, neg, pos, pos] as diffusers repeats
    torch.testing.assert_close(update["prompt_embeds"][2:3], enc.encode(["dog"]).embeds, rtol=0, atol=1e-6)


def test_argument_checks(sd1):
    _, enc = sd1
    with pytest.raises(ValueError):
        build_conditioning(enc, ["a", "b"], ["x", "y", "z"], 10)
    with pytest.raises(ValueError):
        build_conditioning(enc, [], [], 10)
