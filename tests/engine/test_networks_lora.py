"""LoRA on the tiny models: every file layout, effect and no-effect by pixels, exact restore, errors, reuse."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.fixtures import network_files as nf
from webui.engine.requests import GenerationRequest, RequestError


@pytest.fixture(scope="module")
def sd1_pipe():
    from tests.fixtures.tiny_models import make_tiny_pipeline

    return make_tiny_pipeline("sd1", seed=0)  # the same weights as tiny_files["sd1"]


@pytest.fixture(scope="module")
def sdxl_pipe():
    from tests.fixtures.tiny_models import make_tiny_pipeline

    return make_tiny_pipeline("sdxl", seed=0)


@pytest.fixture
def lora_dir(data_dir):
    d = data_dir / "models" / "Lora"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pixels(engine, prompt, negative="", seed=3, **kw):
    r = engine.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, steps=2,
                                          save_images=False, **kw))
    return np.asarray(r.images[0]).astype(np.int16), r


def params_line(result):
    return result.infotexts[0].splitlines()[-1]


def test_kohya_lora_changes_pixels_and_a_prompt_without_lora_is_exactly_the_fresh_model(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), rank=4, seed=1)
    nf.write_kohya(lora_dir / "detail.safetensors", pairs, alpha=2)
    fresh, _ = pixels(engine, "a red house")
    with_lora, r = pixels(engine, "a red house <lora:detail:1>")
    assert np.abs(with_lora - fresh).mean() > 2
    assert not any("not applied" in w for w in r.warnings)
    after, _ = pixels(engine, "a red house")
    assert np.array_equal(after, fresh)  # bit-exact restore of the fused weights
    # the tag is in the infotext prompt, and the hash (addnet: sha256 of the data after the header)
    data = (lora_dir / "detail.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    addnet = hashlib.sha256(data[8 + n:]).hexdigest()[:12]
    assert r.infotexts[0].startswith("a red house <lora:detail:1>")
    assert f'Lora hashes: "detail: {addnet}"' in params_line(r)


def test_weights_text_encoder_and_unet_split(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), rank=4, seed=2)
    nf.write_kohya(lora_dir / "w.safetensors", pairs, alpha=4)
    base, _ = pixels(engine, "a cat")
    zero, _ = pixels(engine, "a cat <lora:w:0>")
    assert np.array_equal(zero, base)
    full, _ = pixels(engine, "a cat <lora:w:1>")
    half, _ = pixels(engine, "a cat <lora:w:0.5>")
    te_only, _ = pixels(engine, "a cat <lora:w:1:0>")
    unet_only, _ = pixels(engine, "a cat <lora:w:0:1>")
    named, _ = pixels(engine, "a cat <lora:w:te=0:unet=1>")
    for a, b in ((full, half), (full, te_only), (full, unet_only), (te_only, unet_only), (te_only, base),
                 (unet_only, base)):
        assert not np.array_equal(a, b)
    assert np.array_equal(named, unet_only)


def test_lora_in_negative_prompt_several_at_once_and_via_wildcards(engine, lora_dir, data_dir, sd1_pipe):
    nf.write_kohya(lora_dir / "one.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn",)), seed=3), alpha=4)
    nf.write_kohya(lora_dir / "two.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("te",)), seed=4), alpha=4)
    base, _ = pixels(engine, "a cat")
    both, r = pixels(engine, "a cat <lora:one:0.8>", negative="blurry <lora:two:1>")
    only_one, _ = pixels(engine, "a cat <lora:one:0.8>")
    assert not np.array_equal(both, only_one) and not np.array_equal(only_one, base)
    assert "Lora hashes: \"one: " in params_line(r) and ", two: " in params_line(r)
    wc = data_dir / "models" / "wildcards"
    wc.mkdir(parents=True, exist_ok=True)
    (wc / "lo.txt").write_text("<lora:one:0.8>\n")
    via_wildcard, r = pixels(engine, "a cat __lo__")
    assert np.array_equal(via_wildcard, only_one)


def test_ldm_module_names_are_converted(engine, lora_dir, sd1_pipe):
    """The same weights under diffusers names and under the original LDM names (input_blocks...) give the same
    pixels; conv layers of resnets, downsampler and upsampler included."""
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "proj", "conv", "te")), rank=4, seed=5)
    assert any(".upsamplers." in n for _, n in pairs) and any(".downsamplers." in n for _, n in pairs)
    nf.write_kohya(lora_dir / "diffusers_names.safetensors", pairs, alpha=2, dtype=torch.float32)
    nf.write_kohya(lora_dir / "ldm_names.safetensors", pairs, alpha=2, ldm_names=True, dtype=torch.float32)
    a, ra = pixels(engine, "a cat <lora:diffusers_names:1>")
    b, rb = pixels(engine, "a cat <lora:ldm_names:1>")
    base, _ = pixels(engine, "a cat")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, base)
    assert not ra.warnings and not rb.warnings  # every module matched


def test_locon_conv_layers(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("conv",)), rank=4, seed=6)
    assert all(d.ndim == 4 for d, _ in pairs.values()) and any(d.shape[-1] == 3 for d, _ in pairs.values())
    nf.write_kohya(lora_dir / "locon.safetensors", pairs, alpha=1, metadata={"ss_network_module": "lycoris.kohya"})
    base, _ = pixels(engine, "a cat")
    conv, r = pixels(engine, "a cat <lora:locon:1>")
    assert np.abs(conv - base).mean() > 1 and not r.warnings
    state = engine.models.active.loras
    assert state.fusions >= 1


def test_diffusers_peft_layout_equals_kohya(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), rank=4, seed=7)
    nf.write_kohya(lora_dir / "k.safetensors", pairs, alpha=2, dtype=torch.float32)
    # alpha baked by hand, and alpha given in diffusers' adapter metadata
    nf.write_peft(lora_dir / "p_baked.safetensors", {k: (d, u * 0.5) for k, (d, u) in pairs.items()})
    nf.write_peft(lora_dir / "p_meta.safetensors", pairs, alpha=2)
    k, _ = pixels(engine, "a cat <lora:k:0.7>")
    p1, _ = pixels(engine, "a cat <lora:p_baked:0.7>")
    p2, _ = pixels(engine, "a cat <lora:p_meta:0.7>")
    assert np.array_equal(k, p1) and np.array_equal(k, p2)


def test_old_diffusers_attention_processor_layout(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn",)), rank=4, seed=8)
    pairs = {k: v for k, v in pairs.items() if ".attn" in k[1]}
    nf.write_peft(lora_dir / "new.safetensors", pairs)
    old = {}
    for (_, name), (d, u) in pairs.items():
        block, proj = name.rsplit(".attn", 1)
        attn, tail = proj.split(".", 1)
        tail = {"to_out.0": "to_out"}.get(tail, tail)
        base = f"unet.{block}.attn{attn}.processor.{tail}_lora"
        old[f"{base}.down.weight"], old[f"{base}.up.weight"] = d.contiguous(), u.contiguous()
    save_file(old, str(lora_dir / "old.safetensors"))
    a, _ = pixels(engine, "a cat <lora:new:1>")
    b, _ = pixels(engine, "a cat <lora:old:1>")
    assert np.array_equal(a, b)


def test_sdxl_kohya_te1_te2_and_unet(engine, lora_dir, sdxl_pipe):
    engine.load_checkpoint("tiny-sdxl")
    pairs = nf.random_pairs(nf.lora_targets(sdxl_pipe, ("attn", "te")), rank=4, seed=9)
    assert {c for c, _ in pairs} == {"unet", "text_encoder", "text_encoder_2"}
    nf.write_kohya(lora_dir / "xl.safetensors", pairs, alpha=2, sdxl=True, ldm_names=True, dtype=torch.float32,
                   metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    nf.write_peft(lora_dir / "xl_peft.safetensors", {k: (d, u * 0.5) for k, (d, u) in pairs.items()})
    te2 = {k: v for k, v in pairs.items() if k[0] == "text_encoder_2"}
    nf.write_kohya(lora_dir / "xl_te2.safetensors", te2, alpha=4, sdxl=True)
    base, _ = pixels(engine, "a cat")
    xl, r = pixels(engine, "a cat <lora:xl:1>")
    assert np.abs(xl - base).mean() > 1 and not r.warnings
    peft, _ = pixels(engine, "a cat <lora:xl_peft:1>")
    assert np.array_equal(xl, peft)
    only_te2, _ = pixels(engine, "a cat <lora:xl_te2:1>")
    assert not np.array_equal(only_te2, base)
    again, _ = pixels(engine, "a cat")
    assert np.array_equal(again, base)


def test_lora_of_another_family_is_an_error_naming_lora_and_family(engine, lora_dir, sd1_pipe, sdxl_pipe):
    nf.write_kohya(lora_dir / "xl_only.safetensors", nf.random_pairs(nf.lora_targets(sdxl_pipe, ("attn", "te")), seed=1),
                   alpha=2, sdxl=True, ldm_names=True, metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    nf.write_kohya(lora_dir / "sd1_only.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), seed=1),
                   alpha=2)
    with pytest.raises(RequestError) as err:
        pixels(engine, "a cat <lora:xl_only:1>")
    assert "xl_only" in str(err.value) and "SD 1.x" in str(err.value) and "SDXL" in str(err.value)
    base, _ = pixels(engine, "a cat")  # the failed LoRA left nothing behind
    engine.load_checkpoint("tiny-sdxl")
    with pytest.raises(RequestError) as err:
        pixels(engine, "a cat <lora:sd1_only:1>")
    assert "sd1_only" in str(err.value) and "SDXL" in str(err.value)
    engine.load_checkpoint("tiny-sd1")
    assert np.array_equal(pixels(engine, "a cat")[0], base)


def test_lora_matching_no_module_is_an_error(engine, lora_dir):
    g = torch.Generator().manual_seed(0)
    save_file({"lora_unet_no_such_block_to_q.lora_down.weight": torch.randn(4, 64, generator=g),
               "lora_unet_no_such_block_to_q.lora_up.weight": torch.randn(64, 4, generator=g)},
              str(lora_dir / "nothing.safetensors"))
    with pytest.raises(RequestError, match=r"'nothing' matches no module of the loaded SD 1.x model"):
        pixels(engine, "a cat <lora:nothing:1>")


def test_unknown_name_lists_close_matches(engine, lora_dir, sd1_pipe):
    nf.write_kohya(lora_dir / "add_detail.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("te",))), alpha=1)
    with pytest.raises(RequestError) as err:
        pixels(engine, "a cat <lora:add_detial:1>")
    assert "'add_detial' not found" in str(err.value) and "add_detail" in str(err.value)


def test_unsupported_formats_are_clear_errors(engine, lora_dir):
    g = torch.Generator().manual_seed(0)
    base = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    loha = {f"{base}.hada_w1_a": torch.randn(64, 4, generator=g), f"{base}.hada_w1_b": torch.randn(4, 32, generator=g),
            f"{base}.hada_w2_a": torch.randn(64, 4, generator=g), f"{base}.hada_w2_b": torch.randn(4, 32, generator=g),
            f"{base}.alpha": torch.tensor(4.0)}
    save_file(loha, str(lora_dir / "loha.safetensors"))
    with pytest.raises(RequestError, match=r"'loha' uses an unsupported format \(LoHa\)"):
        pixels(engine, "a cat <lora:loha:1>")


def test_names_subfolders_aliases_and_lycoris_folder(engine, data_dir, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn",)), seed=11)
    (lora_dir / "styles").mkdir()
    nf.write_kohya(lora_dir / "styles" / "ink_v2.safetensors", pairs, alpha=4, metadata={"ss_output_name": "inkstyle"})
    lyco = data_dir / "models" / "LyCORIS"
    lyco.mkdir(parents=True)
    nf.write_kohya(lyco / "lyco_thing.safetensors", pairs, alpha=4)
    by_name, r1 = pixels(engine, "a cat <lora:ink_v2:1>")
    by_alias, r2 = pixels(engine, "a cat <lora:inkstyle:1>")
    by_path, _ = pixels(engine, "a cat <lora:styles/ink_v2:1>")
    lyco_img, _ = pixels(engine, "a cat <lyco:lyco_thing:1>")
    assert np.array_equal(by_name, by_alias) and np.array_equal(by_name, by_path) and np.array_equal(by_name, lyco_img)
    assert "inkstyle: " in params_line(r2)  # the name as written in the prompt, like A1111
    assert engine.networks.loras.reads == 2  # one file, read once (+ the LyCORIS copy)


def test_reused_lora_is_not_read_again_and_costs_no_refusion(engine, lora_dir, sd1_pipe):
    nf.write_kohya(lora_dir / "reuse.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn", "te")), seed=12),
                   alpha=2)
    lib = engine.networks.loras
    first, _ = pixels(engine, "a cat <lora:reuse:0.8>")
    assert lib.reads == 1
    state = engine.models.active.loras
    fusions = state.fusions
    second, _ = pixels(engine, "a cat <lora:reuse:0.8>")
    assert np.array_equal(first, second)
    assert lib.reads == 1 and state.fusions == fusions  # same LoRA, same weights: nothing to do
    other, _ = pixels(engine, "a cat <lora:reuse:0.3>")
    assert lib.reads == 1 and state.fusions == fusions + 1 and not np.array_equal(other, first)
    pixels(engine, "a cat")
    back, _ = pixels(engine, "a cat <lora:reuse:0.8>")
    assert lib.reads == 1 and np.array_equal(back, first)


def test_batch_with_different_loras_per_image(engine, lora_dir, data_dir, sd1_pipe):
    """Wildcards can give each image of a job other LoRAs; each batch gets its own."""
    nf.write_kohya(lora_dir / "b1.safetensors", nf.random_pairs(nf.lora_targets(sd1_pipe, ("attn",)), seed=13), alpha=4)
    wc = data_dir / "models" / "wildcards"
    wc.mkdir(parents=True, exist_ok=True)
    (wc / "maybe.txt").write_text("<lora:b1:1>\nplain\n")
    r = engine.generate(GenerationRequest(prompt="a cat __maybe__", seed=20, steps=2, n_iter=6, save_images=False))
    with_tag = [i for i, p in enumerate(r.prompts) if "<lora:b1:1>" in p]
    without = [i for i, p in enumerate(r.prompts) if "<lora:b1:1>" not in p]
    assert with_tag and without
    for i in with_tag + without:
        alone, _ = pixels(engine, r.prompts[i].replace("__maybe__", ""), seed=r.seeds[i])
        assert np.array_equal(np.asarray(r.images[i]).astype(np.int16), alone)


def test_library_metadata_preview_and_api_items(engine, lora_dir, sd1_pipe):
    pairs = nf.random_pairs(nf.lora_targets(sd1_pipe, ("te",)), seed=14)
    freq = {"10_chars": {"inkcat": 40, "smile": 12, "solo": 30}}
    nf.write_kohya(lora_dir / "meta.safetensors", pairs, alpha=1, metadata={
        "ss_output_name": "meta_alias", "ss_base_model_version": "sd_v1", "ss_sd_model_name": "v1-5-pruned.ckpt",
        "ss_resolution": "(512, 512)", "ss_tag_frequency": json.dumps(freq)})
    from PIL import Image

    Image.new("RGB", (8, 8)).save(lora_dir / "meta.preview.png")
    items = {i.name: i for i in engine.list_loras(refresh=True)}
    info = items["meta"]
    api = info.as_api()
    assert set(api) == {"name", "alias", "path", "metadata"}
    assert api["alias"] == "meta_alias" and api["path"] == str(lora_dir / "meta.safetensors")
    assert api["metadata"]["ss_tag_frequency"] == freq  # JSON values decoded, like A1111
    d = info.details()
    assert d["trigger_words"][:3] == ["inkcat", "solo", "smile"]
    assert d["resolution"] == "512x512" and d["sd_version"] == "SD1" and d["base_model"] == "v1-5-pruned.ckpt"
    assert d["preview"] == str(lora_dir / "meta.preview.png")
    assert engine.networks.loras.find("meta_alias") is info or engine.networks.loras.find("meta_alias").path == info.path
