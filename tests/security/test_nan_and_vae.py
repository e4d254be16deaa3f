"""Issue 15, items 8 and 9: NaN never becomes a silent black image, and a VAE that fails to load never stays selected.

Each test sends what a probe sent (an all-NaN checkpoint, a NaN LoRA, `<lora:x:nan>`, `(word:1e400)`, a garbage VAE
chosen in the options) and asserts on what comes back: the error and its message, the files in outputs/, the pixels
of the next image."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from safetensors.torch import save_file

from tests.fixtures import network_files as nf
from webui.engine.checkpoints.ldm_export import save_single_file, vae_to_ldm
from webui.engine.generation import NonFiniteOutputError, screen_image
from webui.engine.prompts.attention import PromptWeightError, parse_prompt_attention
from webui.engine.prompts.extra_networks import ExtraNetworkError, extract_extra_networks
from webui.engine.prompts.schedule import prompt_schedule
from webui.engine.requests import GenerationRequest, RequestError

NATIVE = {"modelspec.resolution": "64x64"}


# ---- fixtures: one tiny SD1 model, an all-NaN copy, a copy whose own VAE is NaN -----------------------------------

@pytest.fixture(scope="module")
def sd1_pipe():
    from tests.fixtures.tiny_models import make_tiny_pipeline

    return make_tiny_pipeline("sd1", seed=0)


@pytest.fixture(scope="module")
def nan_models(tmp_path_factory, sd1_pipe):
    from tests.fixtures.tiny_models import ldm_state_dict

    d = tmp_path_factory.mktemp("nan-models")
    sd = ldm_state_dict(sd1_pipe, "sd1")
    save_single_file(d / "tiny-sd1.safetensors", sd, NATIVE)
    save_single_file(d / "tiny-nan.safetensors", {k: torch.full_like(v, math.nan) for k, v in sd.items()}, NATIVE)
    nan_vae = {k: torch.full_like(v, math.nan) if k.startswith("first_stage_model.") else v for k, v in sd.items()}
    save_single_file(d / "tiny-nanvae.safetensors", nan_vae, NATIVE)
    return d


@pytest.fixture
def eng(tmp_path, nan_models):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    ckpts = tmp_path / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    for f in nan_models.iterdir():
        (ckpts / f.name).symlink_to(f)
    (tmp_path / "models" / "Lora").mkdir()
    (tmp_path / "models" / "VAE").mkdir()
    engine = Engine(Settings(data_dir=tmp_path, ckpt="tiny-sd1"))
    yield engine
    engine.close()


def saved_files(engine) -> list[Path]:
    out = Path(engine.settings.outputs_path)
    return sorted(p for p in out.rglob("*") if p.is_file()) if out.exists() else []


def generate(engine, prompt="a red house", **kw):
    kw.setdefault("steps", 2)
    return engine.generate(GenerationRequest(prompt=prompt, seed=3, **kw))


def assert_real_image(result):
    px = np.asarray(result.images[0]).astype(np.float32)
    assert px.std() > 1 and px.max() > 0  # not a black (all-zero) image


# ---- item 8: NaN weights in a checkpoint, a LoRA, a VAE -----------------------------------------------------------

def test_an_all_nan_checkpoint_fails_the_job_and_saves_nothing(eng):
    with pytest.raises(NonFiniteOutputError) as err:
        generate(eng, checkpoint="tiny-nan")
    msg = str(err.value)
    assert "NaN" in msg and "tiny-nan.safetensors" in msg and "every image" in msg
    assert saved_files(eng) == []
    # the same engine still makes real images with a good checkpoint
    r = generate(eng, checkpoint="tiny-sd1")
    assert_real_image(r)
    assert len(saved_files(eng)) == 1


def test_a_checkpoint_whose_vae_is_nan_names_the_vae(eng):
    with pytest.raises(NonFiniteOutputError, match=r"The VAE produced NaN/Inf values for 100% of an image") as err:
        generate(eng, checkpoint="tiny-nanvae")
    assert "tiny-nanvae.safetensors" in str(err.value) and "the checkpoint's own VAE" in str(err.value)
    assert saved_files(eng) == []


def test_a_lora_file_with_nan_weights_is_refused_naming_the_file(eng, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), rank=4, seed=1)
    first = next(iter(pairs))
    pairs[first] = (torch.full_like(pairs[first][0], math.nan), pairs[first][1])
    nf.write_kohya(eng.settings.data_dir / "models" / "Lora" / "broken.safetensors", pairs, alpha=2)
    with pytest.raises(RequestError, match=r"LoRA broken\.safetensors is broken: 1 of its \d+ tensors hold NaN/Inf"):
        generate(eng, "a red house <lora:broken:1>")
    assert saved_files(eng) == []
    assert_real_image(generate(eng, "a red house"))  # the model was left as it was


def test_a_lora_that_overflows_the_weights_is_named_in_the_nan_error(eng, sd1_pipe):
    # finite in the file, but down @ up overflows float32 once fused: only the output check can catch it
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn",)), rank=4, seed=1, scale=1e20)
    nf.write_kohya(eng.settings.data_dir / "models" / "Lora" / "huge.safetensors", pairs, alpha=4, dtype=torch.float32)
    with pytest.raises(NonFiniteOutputError, match=r"while sampling") as err:
        generate(eng, "a red house <lora:huge:0.5>")
    assert "<lora:huge:0.5>" in str(err.value) and "tiny-sd1.safetensors" in str(err.value)
    assert saved_files(eng) == []
    fresh = generate(eng, "a red house")  # the fused weights were put back
    assert_real_image(fresh)


def test_a_vae_file_with_nan_weights_is_refused_and_not_selected(eng, sd1_pipe):
    ldm = {k: torch.full_like(v, math.nan) for k, v in vae_to_ldm(sd1_pipe.vae).items()}
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(eng.settings.data_dir / "models" / "VAE" / "nan.safetensors"))
    generate(eng)  # a model is loaded
    with pytest.raises(RequestError, match=r"VAE nan\.safetensors is broken: .* NaN/Inf"):
        eng.select_vae("nan.safetensors")
    assert eng.networks.vae_choice == "Automatic"
    assert_real_image(generate(eng))


def test_partly_non_finite_pixels_are_drawn_black_with_a_warning():
    img = torch.zeros(1, 3, 8, 8)
    img[0, :, 0, 0] = math.nan
    warnings: list[str] = []
    out = screen_image(img, "checkpoint x", warnings)
    assert bool(torch.isfinite(out).all()) and float(out[0, 0, 0, 0]) == -1.0 and float(out[0, 0, 1, 1]) == 0.0
    assert warnings == ["The VAE produced NaN/Inf values for 1.6% of an image; those pixels are black"]
    img[0, :, :6] = math.inf
    with pytest.raises(NonFiniteOutputError, match="for 75% of an image.*in use: checkpoint x"):
        screen_image(img, "checkpoint x", warnings)


# ---- item 8: weights in prompt tags -------------------------------------------------------------------------------

BAD_WEIGHTS = ["nan", "NaN", "inf", "-inf", "1e308", "-1e308", "101", "1e3"]


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
@pytest.mark.parametrize("form", ["<lora:x:{}>", "<lora:x:1:{}>", "<lora:x:te={}>", "<lora:x:1:unet={}>",
                                  "<hypernet:x:{}>"])
def test_non_finite_or_absurd_network_weights_are_refused(form, weight):
    tag = form.format(weight)
    with pytest.raises(ExtraNetworkError, match=rf"^{tag}: weight '{weight}' is out of range"):
        extract_extra_networks(f"a cat {tag}")


def test_sane_network_weights_still_parse():
    _, nets = extract_extra_networks("<lora:a:-5> <lora:b:100:-100> <lora:c:0.35:te=2>")
    assert [(n.te_multiplier, n.unet_multiplier) for n in nets] == [(-5.0, -5.0), (100.0, -100.0), (2.0, 2.0)]


@pytest.mark.parametrize("prompt", ["a cat <lora:x:nan>", "a cat <lora:x:1e308>"])
def test_a_bad_lora_weight_fails_the_job_before_any_image(eng, prompt):
    with pytest.raises(ExtraNetworkError, match=r"<lora:x:[^>]+>: weight .* is out of range"):
        generate(eng, prompt)
    assert saved_files(eng) == []


@pytest.mark.parametrize("prompt, weight", [
    ("(word:" + "9" * 400 + ")", "inf"),  # float() overflows to Inf
    ("((word:0):" + "9" * 400 + ")", "nan"),  # 0 * Inf
    ("(word:1000)", "1000"),
    ("((word:50):50)", "2500"),  # nested weights multiply
    ("(word:-101)", "-101"),
])
def test_non_finite_or_absurd_attention_weights_are_refused(prompt, weight):
    with pytest.raises(PromptWeightError, match=rf"attention weight {weight} of 'word' is out of range"):
        parse_prompt_attention(prompt)


def test_sane_attention_weights_and_literal_nan_are_unchanged():
    assert parse_prompt_attention("(a:1.5) (b:-2) (c:100)") == [("a", 1.5), (" ", 1.0), ("b", -2.0), (" ", 1.0),
                                                                  ("c", 100.0)]
    # "nan" / "1e308" are not weights in A1111's grammar: the text stays literal, weighted by the plain brackets
    assert parse_prompt_attention("(word:nan)") == [("word:nan", 1.1)]
    assert parse_prompt_attention("(word:1e308)") == [("word:1e308", 1.1)]


def test_an_absurd_attention_weight_fails_the_job_with_a_user_error(eng):
    with pytest.raises(RequestError, match=r"attention weight inf of 'word' is out of range"):
        generate(eng, "a (word:" + "9" * 400 + ")")
    assert saved_files(eng) == []


def test_a_prompt_editing_step_that_overflows_is_past_the_end():
    # 1e400 is Inf as a float: int(Inf) used to raise OverflowError (a 500); like any step beyond the end it never
    # switches, and -Inf switches at once
    assert prompt_schedule("[a:b:1e400]", 10) == prompt_schedule("[a:b:1000]", 10) == [(10, "a")]
    assert prompt_schedule("[a:b:-1e400]", 10) == [(10, "b")]


# ---- item 9: a VAE that fails to load never stays selected ---------------------------------------------------------

@pytest.fixture
def vae_files(eng):
    from tests.fixtures.tiny_models import make_tiny_pipeline

    d = eng.settings.data_dir / "models" / "VAE"
    other = make_tiny_pipeline("sd1", seed=5).vae
    save_file({k: v.contiguous() for k, v in vae_to_ldm(other).items()}, str(d / "good.safetensors"))
    (d / "broken.pt").write_bytes(b"\x00garbage, not a pickle" * 10)
    good = (d / "good.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    return d


@pytest.mark.parametrize("broken", ["broken.pt", "truncated.safetensors"])
def test_a_vae_that_fails_to_load_leaves_the_previous_one_selected(eng, vae_files, broken):
    eng.select_vae("good.safetensors")
    before = generate(eng, save_images=False)
    assert "VAE: good.safetensors" in before.infotexts[0]
    with pytest.raises(RequestError, match=broken.replace(".", r"\.")):
        eng.select_vae(broken)
    assert eng.networks.vae_choice == "good.safetensors"
    after = generate(eng, save_images=False)
    assert_real_image(after)
    assert "VAE: good.safetensors" in after.infotexts[0]
    assert np.array_equal(np.asarray(after.images[0]), np.asarray(before.images[0]))


def test_a_broken_vae_chosen_before_any_model_is_loaded_is_refused(eng, vae_files):
    assert eng.models.active is None
    with pytest.raises(RequestError, match=r"broken\.pt"):
        eng.select_vae("broken.pt")
    assert eng.networks.vae_choice == "Automatic"
    assert_real_image(generate(eng))


def test_a_broken_vae_override_fails_that_job_only(eng, vae_files):
    own = generate(eng, save_images=False)
    with pytest.raises(RequestError, match=r"broken\.pt"):
        generate(eng, override_settings={"sd_vae": "broken.pt"})
    assert saved_files(eng) == []
    again = generate(eng, save_images=False)
    assert "VAE:" not in again.infotexts[0]
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(own.images[0]))


def test_api_options_with_a_broken_vae_keep_later_jobs_working(server):
    vae_dir = server.data_dir / "models" / "VAE"
    vae_dir.mkdir(parents=True, exist_ok=True)
    broken = vae_dir / "broken.pt"
    broken.write_bytes(b"\x00garbage, not a pickle" * 10)
    try:
        r = requests.post(f"{server.api}/options", json={"sd_vae": "broken.pt"}, timeout=60)
        assert r.status_code == 422 and "broken.pt" in r.text
        assert requests.get(f"{server.api}/options", timeout=30).json()["sd_vae"] == "Automatic"
        r = requests.post(f"{server.api}/txt2img", json={"prompt": "a cat", "steps": 2, "seed": 1}, timeout=120)
        assert r.status_code == 200, r.text
        assert len(r.json()["images"]) == 1
    finally:
        broken.unlink()
        server.engine.networks.vae_choice = "Automatic"
