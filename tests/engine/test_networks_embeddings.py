"""Textual inversion on the tiny models: A1111 .pt, .safetensors and SDXL embeddings, skipped sizes, refused pickles."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from tests.fixtures import network_files as nf
from webui.engine.requests import GenerationRequest


@pytest.fixture
def emb_dir(data_dir):
    d = data_dir / "embeddings"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pixels(engine, prompt, negative="", seed=3):
    r = engine.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, steps=2, save_images=False))
    return np.asarray(r.images[0]).astype(np.int16), r


def vecs(n, width, seed):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 0.5


def test_a1111_pt_embedding_is_used_and_hashed(engine, emb_dir):
    plain, r0 = pixels(engine, "a lsqstar cat")
    assert "TI hashes" not in r0.infotexts[0]
    path = nf.write_embedding_pt(emb_dir / "lsqstar.pt", vecs(3, 64, 0))
    used, r = pixels(engine, "a lsqstar cat")  # the folder is rescanned when it changes
    assert np.abs(used - plain).mean() > 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert f"TI hashes: \"lsqstar: {sha}\"" in r.infotexts[0].splitlines()[-1]
    other, r2 = pixels(engine, "a cat")
    assert "TI hashes" not in r2.infotexts[0]
    # three vectors: the token counter counts them
    assert engine.token_count("a lsqstar cat")[0] == 5
    report = engine.list_embeddings()
    assert report["loaded"]["lsqstar"] == {"step": 100, "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "tiny",
                                           "shape": 64, "vectors": 3}


def test_safetensors_layouts_and_wrong_size_skipped(engine, emb_dir):
    nf.write_embedding_safetensors(emb_dir / "lsqemb.safetensors", emb_params=vecs(2, 64, 1))
    nf.write_embedding_safetensors(emb_dir / "lsqdiff.safetensors", lsqdiff=vecs(1, 64, 2)[0])  # diffusers layout
    nf.write_embedding_safetensors(emb_dir / "lsqwide.safetensors", emb_params=vecs(2, 768, 3))  # a real SD1 size
    nf.write_embedding_safetensors(emb_dir / "lsqxl.safetensors", clip_l=vecs(1, 64, 4), clip_g=vecs(1, 128, 5))
    base, _ = pixels(engine, "a lsqwide lsqxl cat")
    a, _ = pixels(engine, "a lsqemb cat")
    b, _ = pixels(engine, "a lsqdiff cat")
    plain, _ = pixels(engine, "a cat")
    assert not np.array_equal(a, plain) and not np.array_equal(b, plain) and not np.array_equal(a, b)
    report = engine.list_embeddings()
    assert set(report["loaded"]) == {"lsqemb", "lsqdiff"}
    assert set(report["skipped"]) == {"lsqwide", "lsqxl"}
    assert report["skipped"]["lsqwide"]["shape"] == 768 and report["skipped"]["lsqxl"]["shape"] == 192
    reasons = engine.networks.embeddings.report(engine.models.active, with_reasons=True)["skipped"]
    assert "768 wide" in reasons["lsqwide"]["reason"] and "another model family" in reasons["lsqxl"]["reason"]
    tok = engine.models.active.components["tokenizer"]
    assert "lsqwide" not in tok.get_vocab()  # skipped ones never touch the tokenizer


def test_sdxl_embedding_needs_clip_l_and_clip_g(engine, emb_dir):
    engine.load_checkpoint("tiny-sdxl")
    nf.write_embedding_safetensors(emb_dir / "lsqxl.safetensors", clip_l=vecs(2, 64, 6), clip_g=vecs(2, 128, 7))
    nf.write_embedding_pt(emb_dir / "lsqsd1.pt", vecs(1, 64, 8))
    plain, _ = pixels(engine, "a lsqxl cat")  # loaded at this first job
    report = engine.list_embeddings()
    assert set(report["loaded"]) == {"lsqxl"} and set(report["skipped"]) == {"lsqsd1"}
    assert report["loaded"]["lsqxl"]["shape"] == 192 and report["loaded"]["lsqxl"]["vectors"] == 2
    word, _ = pixels(engine, "a lsqsd1 cat")  # not loaded: an ordinary word
    assert not np.array_equal(plain, word)
    m = engine.models.active
    for tok, te, key in ((m.components["tokenizer"], m.components["text_encoder"], "clip_l"),
                         (m.components["tokenizer_2"], m.components["text_encoder_2"], "clip_g")):
        ids = tok.convert_tokens_to_ids(["lsqxl", "lsqxl_1"])
        rows = te.get_input_embeddings().weight[ids]
        want = {"clip_l": vecs(2, 64, 6), "clip_g": vecs(2, 128, 7)}[key]
        assert torch.allclose(rows.float(), want)


def test_malicious_pickle_is_refused_and_never_runs(engine, emb_dir, tmp_path):
    marker = tmp_path / "PWNED"
    nf.write_malicious_pt(emb_dir / "lsqevil.pt", marker, vecs(1, 64, 9))
    nf.write_embedding_pt(emb_dir / "lsqgood.pt", vecs(1, 64, 10))
    assert not marker.exists()
    pixels(engine, "a lsqevil lsqgood cat")
    report = engine.list_embeddings()
    assert "lsqevil" not in report["loaded"] and "lsqgood" in report["loaded"]
    assert "refused" in engine.networks.embeddings.errors["lsqevil"]
    assert not marker.exists()


def test_name_that_is_already_a_word_is_skipped(engine, emb_dir):
    nf.write_embedding_pt(emb_dir / "house.pt", vecs(1, 64, 11))
    a, _ = pixels(engine, "a house")
    reasons = engine.networks.embeddings.report(engine.models.active, with_reasons=True)["skipped"]
    assert "already a token" in reasons["house"]["reason"]
