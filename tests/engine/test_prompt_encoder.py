"""PromptEncoder on tiny random SD1 / SD2 / SDXL text encoders with the real CLIP BPE vocabulary."""

import copy

import pytest
import torch

from tests.fixtures.tiny_models import make_tiny_pipeline
from webui.engine.prompts.encoder import PromptEncoder


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def encoder_for(pipe, family, **kw):
    if family == "sdxl":
        return PromptEncoder([pipe.tokenizer, pipe.tokenizer_2], [pipe.text_encoder, pipe.text_encoder_2], family, **kw)
    return PromptEncoder([pipe.tokenizer], [pipe.text_encoder], family, **kw)


@pytest.fixture(scope="module")
def pipes():
    return {family: make_tiny_pipeline(family, seed=3) for family in ("sd1", "sd2", "sdxl")}


@pytest.fixture(scope="module")
def sd1(pipes):
    return encoder_for(pipes["sd1"], "sd1")


PROMPT = "a photo of a cat sitting on a red chair, high quality, detailed"


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_plain_prompt_equals_diffusers_encode_prompt(pipes, family):
    pipe = pipes[family]
    enc = encoder_for(pipe, family)
    with torch.no_grad():
        ref_pos, ref_neg = pipe.encode_prompt(PROMPT, "cpu", 1, True)  # default negative: ""
    pos = enc.encode([PROMPT])
    neg = enc.encode([""], negative=True)
    assert pos.pooled is None
    assert torch.equal(pos.embeds, ref_pos)
    assert torch.equal(neg.embeds, ref_neg)


def test_plain_prompt_equals_diffusers_encode_prompt_sdxl(pipes):
    pipe = pipes["sdxl"]
    enc = encoder_for(pipe, "sdxl")
    with torch.no_grad():
        ref_pos, ref_neg, ref_pooled, ref_neg_pooled = pipe.encode_prompt(PROMPT, device="cpu")
        explicit = pipe.encode_prompt(PROMPT, device="cpu", negative_prompt="a bad one")
    pos = enc.encode([PROMPT])
    neg = enc.encode([""], negative=True)
    assert pos.embeds.shape == (1, 77, 64 + 128) and pos.pooled.shape == (1, 64)
    assert torch.equal(pos.embeds, ref_pos) and torch.equal(pos.pooled, ref_pooled)
    # empty negative: zeros, like diffusers' force_zeros_for_empty_prompt and A1111
    assert torch.equal(neg.embeds, ref_neg) and torch.equal(neg.pooled, ref_neg_pooled)
    assert not neg.embeds.any()
    other = enc.encode(["a bad one"], negative=True)
    assert torch.equal(other.embeds, explicit[1]) and torch.equal(other.pooled, explicit[3])
    assert enc.encode([""]).embeds.any()  # not a negative: "" is really encoded


def test_ids_match_diffusers_padding(pipes):
    for family, tok in (("sd2", pipes["sd2"].tokenizer), ("sdxl", pipes["sdxl"].tokenizer_2)):
        enc = encoder_for(pipes[family], family)
        branch = enc._branches[-1]
        ref = tok("a cat", padding="max_length", max_length=77).input_ids
        assert branch.tokenize_line("a cat", "Original")[0][0].tokens == ref
        assert ref[-1] == 0  # "!" padding for the OpenCLIP-trained encoders


def test_weights_scale_the_token_and_restore_the_mean(sd1):
    plain = sd1.encode(["a cat on a chair"]).embeds[0]
    up = sd1.encode(["a (cat:1.5) on a chair"]).embeds[0]
    down = sd1.encode(["a (cat:0.5) on a chair"]).embeds[0]
    cat = 2  # [BOS] a cat ...
    mults = torch.ones(77)
    mults[cat] = 1.5
    expected = plain * mults[:, None]
    expected = expected * (plain.mean() / expected.mean())
    torch.testing.assert_close(up, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(up.mean(), plain.mean(), atol=1e-6)  # the mean is restored

    def share(z):  # the token's norm relative to the other tokens
        norms = z.norm(dim=-1)
        return (norms[cat] / norms.sum()).item()

    assert share(down) < share(plain) < share(up)
    cosine = torch.nn.functional.cosine_similarity(up[cat], plain[cat], dim=0)
    assert cosine > 0.9999  # same direction, only the length changes
    # square brackets weaken
    assert share(sd1.encode(["a [[cat]] on a chair"]).embeds[0]) < share(plain)


def test_long_prompt_three_chunks_keeps_every_token(sd1, pipes):
    tok = pipes["sd1"].tokenizer
    words = " ".join(["cat", "dog", "tree", "house"] * 50)  # 200 one-token words, no commas
    ids = tok(words, add_special_tokens=False).input_ids
    assert len(ids) == 200
    chunks = sd1.tokenize(words)
    assert len(chunks) == 3
    for chunk in chunks:
        assert len(chunk.tokens) == 77 and chunk.tokens[0] == tok.bos_token_id and chunk.tokens[76] == tok.eos_token_id
    body = [t for c in chunks for t in c.tokens[1:76]]
    assert body[:200] == ids and set(body[200:]) == {tok.eos_token_id}
    cond = sd1.encode([words])
    assert cond.embeds.shape == (1, 231, 64)
    assert sd1.token_count(words) == (200, 225)
    # each chunk is encoded on its own: chunk 2 equals encoding its words alone
    second = tok.decode(ids[75:150])
    torch.testing.assert_close(cond.embeds[:, 77:154], sd1.encode([second]).embeds, rtol=0, atol=1e-6)


def test_token_count(sd1):
    assert sd1.token_count("") == (0, 75)
    assert sd1.token_count("a cat") == (2, 75)
    assert sd1.token_count("(a cat:1.3)") == (2, 75)  # emphasis syntax costs nothing
    assert sd1.token_count(" ".join(["cat"] * 75)) == (75, 75)
    assert sd1.token_count(" ".join(["cat"] * 76)) == (76, 150)
    assert sd1.token_count("a cat BREAK a dog") == (77, 150)  # the first chunk counts as 75


def test_break_starts_a_new_chunk(sd1, pipes):
    tok = pipes["sd1"].tokenizer
    chunks = sd1.tokenize("a cat BREAK a dog")
    assert len(chunks) == 2
    assert chunks[0].tokens[:4] == [tok.bos_token_id] + tok("a cat", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert chunks[1].tokens[1:3] == tok("a dog", add_special_tokens=False).input_ids
    assert sd1.encode(["a cat BREAK a dog"]).embeds.shape[1] == 154
    # A1111 quirk: "BREAK" inside brackets is just a word
    assert len(sd1.tokenize("(a cat BREAK a dog)")) == 1


def test_comma_backtrack(sd1, pipes):
    tok = pipes["sd1"].tokenizer
    head = " ".join(["cat"] * 70)
    tail = " ".join(["dog"] * 10)
    chunks = sd1.tokenize(f"{head}, {tail}")
    comma = tok.convert_tokens_to_ids(",</w>")
    dog = tok.convert_tokens_to_ids("dog</w>")
    assert len(chunks) == 2
    # the chunk ends at the comma; all ten "dog"s move to the next chunk
    assert chunks[0].tokens[70] == cat_id(tok) and chunks[0].tokens[71] == comma
    assert set(chunks[0].tokens[72:]) == {tok.eos_token_id}
    assert chunks[1].tokens[1:11] == [dog] * 10
    # without the option the chunk is filled to 75 first
    no_backtrack = PromptEncoder([tok], [pipes["sd1"].text_encoder], "sd1", comma_padding_backtrack=0)
    assert no_backtrack.tokenize(f"{head}, {tail}")[1].tokens[1:7] == [dog] * 6
    # a comma further back than 20 tokens does not move anything
    far = " ".join(["cat"] * 50) + ", " + " ".join(["dog"] * 30)
    assert sd1.tokenize(far)[0].tokens[52:76] == [dog] * 24


def cat_id(tok):
    return tok.convert_tokens_to_ids("cat</w>")


def test_prompt_with_weights_across_chunks_keeps_weights(sd1):
    text = " ".join(["cat"] * 74) + " (dog:1.4) tree"
    chunks = sd1.tokenize(text)
    assert chunks[0].multipliers[75] == pytest.approx(1.4)
    assert chunks[1].multipliers[1] == 1.0 and chunks[1].multipliers[0] == 1.0


def test_clip_skip(pipes):
    pipe = pipes["sd1"]
    enc = encoder_for(pipe, "sd1")
    ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out = pipe.text_encoder(ids, output_hidden_states=True)
        expected = pipe.text_encoder.final_layer_norm(out.hidden_states[-2])
    assert torch.equal(enc.encode([PROMPT], clip_skip=2).embeds, expected)
    assert torch.equal(enc.encode([PROMPT], clip_skip=1).embeds, out.last_hidden_state)
    # A1111 ignores clip skip for SD2 and SDXL unless asked to apply it
    for family in ("sd2", "sdxl"):
        e = encoder_for(pipes[family], family)
        assert torch.equal(e.encode([PROMPT], clip_skip=2).embeds, e.encode([PROMPT]).embeds)
    xl = pipes["sdxl"]
    applied = encoder_for(xl, "sdxl", a1111_clip_skip=False)
    with torch.no_grad():
        ref = xl.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False, clip_skip=1)[0]
    assert torch.equal(applied.encode([PROMPT], clip_skip=2).embeds, ref)


def test_textual_inversion_tokens_added_later(pipes):
    tok = copy.deepcopy(pipes["sd1"].tokenizer)
    enc = PromptEncoder([tok], [pipes["sd1"].text_encoder], "sd1")
    assert len(enc.tokenize("a <emb> b")[0].tokens) == 77
    tok.add_tokens(["<emb>", "<emb>_1", "<emb>_2"])  # what diffusers' load_textual_inversion does
    ids = [tok.convert_tokens_to_ids(t) for t in ("<emb>", "<emb>_1", "<emb>_2")]
    a, b = tok("a b", add_special_tokens=False).input_ids
    chunk = enc.tokenize("a (<emb>:1.2) b")[0]
    assert chunk.tokens[1:6] == [a] + ids + [b]  # all three vectors, in order
    assert chunk.multipliers[1:6] == [1.0, 1.2, 1.2, 1.2, 1.0]
    # an embedding is never split over two chunks
    chunks = enc.tokenize(" ".join(["cat"] * 74) + " <emb>")
    assert chunks[0].tokens[75] == tok.eos_token_id and chunks[1].tokens[1:4] == ids


def test_emphasis_modes(pipes):
    pipe = pipes["sd1"]
    plain = encoder_for(pipe, "sd1").encode(["a cat"]).embeds
    ignore = encoder_for(pipe, "sd1", emphasis="Ignore").encode(["a (cat:1.5)"]).embeds
    assert torch.equal(ignore, plain)
    literal = encoder_for(pipe, "sd1", emphasis="None").tokenize("a (cat:1.5) BREAK x")
    ref = pipe.tokenizer("a (cat:1.5) BREAK x", padding="max_length", max_length=77).input_ids
    assert len(literal) == 1 and literal[0].tokens == ref  # brackets and BREAK are plain text
    no_norm = encoder_for(pipe, "sd1", emphasis="No norm").encode(["a (cat:1.5)"]).embeds
    torch.testing.assert_close(no_norm[0, 2], plain[0, 2] * 1.5)
    with pytest.raises(ValueError):
        encoder_for(pipe, "sd1", emphasis="Bogus")


def test_batch_mean_counts_repeated_texts_like_a1111(sd1):
    """A1111 takes the emphasis mean over the whole batch; repeated texts are encoded once but still counted."""
    texts = ["a (cat:1.5)", "a (cat:1.5)", "a [dog]"]
    got = sd1.encode(texts).embeds
    assert torch.equal(got[0], got[1])
    # reference: the A1111 computation over the full batch of three
    branch = sd1._branches[0]
    chunks = [branch.tokenize_line(t, "Original")[0][0] for t in texts]
    with torch.no_grad():
        z = branch.text_encoder(torch.tensor([c.tokens for c in chunks])).last_hidden_state
    m = torch.tensor([c.multipliers for c in chunks])
    weighted = z * m[..., None]
    expected = weighted * (z.mean() / weighted.mean())
    # the mean of layer-normed outputs is close to 0, so the ratio of means is sensitive to summation order
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # a text alone is not influenced by others
    assert not torch.allclose(sd1.encode(["a [dog]"]).embeds[0], got[2])


def test_batch_pads_to_longest(sd1):
    long = " ".join(["cat"] * 100)
    cond = sd1.encode([long, "a dog"])
    assert cond.embeds.shape == (2, 154, 64)
    assert cond.chunks == 2
    # the short text's second chunk is an empty chunk
    torch.testing.assert_close(cond.embeds[1:, 77:], sd1.encode([""]).embeds, rtol=0, atol=1e-6)


def test_family_checks(pipes):
    with pytest.raises(ValueError):
        PromptEncoder([pipes["sd1"].tokenizer], [pipes["sd1"].text_encoder], "sdxl")
    with pytest.raises(ValueError):
        PromptEncoder([pipes["sd1"].tokenizer], [pipes["sd1"].text_encoder], "sd3")
