"""Training (issue 20) on tiny random models: the files it writes (kohya LoRA with ss_* metadata, A1111 embeddings)
load like downloaded ones, the loaded model is untouched, interrupt saves and resume continues, bad input is refused
before the queue. What training teaches is tested on the built-in model in test_training_meaning.py."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from webui.engine import TrainingError, TrainingRequest


def make_images(folder, n=3, color=(0, 200, 210), size=64, captions=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.new("RGB", (size + 16 * i, size), (245, 245, 245))
        ImageDraw.Draw(im).ellipse([8 + 4 * i, 8, 40 + 4 * i, 40], fill=color)
        im.save(folder / f"img{i}.png")
        if captions:
            (folder / f"img{i}.txt").write_text(captions[i % len(captions)])
    return folder


def weights(engine):
    model = engine.active_model()
    return {(name, k): v.detach().clone() for name in ("unet", "text_encoder", "text_encoder_2", "vae")
            if name in model.components for k, v in model.components[name].state_dict().items()}


def assert_same(before, after):
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"training changed the loaded model: {changed[:5]}"


def lora_request(tmp_path, **kw):
    base = {"image_dir": make_images(tmp_path / "imgs", captions=["a cyan ball", "cyan, ball, round"]),
            "trigger": "zq", "steps": 4, "batch_size": 2, "seed": 1}
    return TrainingRequest("lora", kw.pop("name", "mylora"), **{**base, **kw})


def test_lora_is_a_kohya_file_with_metadata_that_loads_by_name(engine, tmp_path):
    engine.load_checkpoint()
    before = weights(engine)
    result = engine.train(lora_request(tmp_path, sample_every=2))
    assert_same(before, weights(engine))
    assert result.path == engine.settings.models_root / "Lora" / "mylora.safetensors" and result.path.is_file()
    assert result.steps == 4 and not result.interrupted and len(result.losses) == 4
    assert [s for s, _ in result.samples] == [2, 4]
    from safetensors import safe_open

    with safe_open(str(result.path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    assert any(k.startswith("lora_te_text_model_") and k.endswith(".lora_up.weight") for k in keys)
    assert any(k.endswith(".alpha") for k in keys)
    # the listing reads it back at once, ss_* as A1111 shows them
    info = {i.name: i for i in engine.list_loras()}["mylora"]
    m = info.metadata
    assert m["ss_network_module"] == "networks.lora" and m["ss_base_model_version"] == "sd_v1"
    assert m["ss_num_train_images"] == "3" and m["ss_max_train_steps"] == "4" and m["ss_steps"] == "4"
    assert m["ss_network_dim"] == str(result.metadata["ss_network_dim"]) and m["ss_seed"] == "1"
    assert m["ss_new_sd_model_hash"] == engine.hashes.sha256(engine.active_model().path)
    assert m["ss_tag_frequency"]["imgs"]["zq"] == 3 and m["ss_tag_frequency"]["imgs"]["cyan"] == 1
    assert m["modelspec.trigger_phrase"] == "zq" and "zq" in m["ss_training_comment"]
    from webui.engine.networks.common import addnet_hash

    assert meta["sshs_model_hash"] == addnet_hash(result.path)  # what readers would compute
    assert info.trigger_words()[0] == "zq"
    # <lora:mylora:1> changes the image, and an image without it is as before training
    req = engine.request_defaults(prompt="zq a ball", seed=3, steps=3, width=64, height=64)
    plain = np.asarray(engine.generate(req).images[0], dtype=float)
    with_lora = np.asarray(engine.generate(engine.request_defaults(
        prompt="zq a ball <lora:mylora:1>", seed=3, steps=3, width=64, height=64)).images[0], dtype=float)
    assert np.abs(plain - with_lora).mean() > 0.5
    again = np.asarray(engine.generate(req).images[0], dtype=float)
    assert np.array_equal(plain, again)


def test_training_leaves_a_model_with_a_fused_lora_untouched(engine, tmp_path):
    engine.load_checkpoint()
    engine.train(lora_request(tmp_path, name="first", steps=2))
    engine.generate(engine.request_defaults(prompt="x <lora:first:0.7>", seed=1, steps=2, width=64, height=64))
    before = weights(engine)  # with "first" fused into the weights now
    result = engine.train(lora_request(tmp_path, name="second", steps=2, train_text_encoder=False))
    assert_same(before, weights(engine))
    # the model's native size, even after a pipeline raised its UNet config's sample_size (diffusers does that)
    assert result.metadata["ss_resolution"] == "(64, 64)"
    assert result.path.name == "second.safetensors"
    from safetensors.torch import load_file

    assert not any(k.startswith("lora_te") for k in load_file(str(result.path)))  # UNet only when asked


def test_interrupt_saves_the_last_step_and_resume_continues(engine, tmp_path):
    engine.load_checkpoint()
    job = engine.submit_training(lora_request(tmp_path, steps=400, batch_size=1))
    while not job.plan.monitor.losses:
        threading.Event().wait(0.05)
    assert engine.current_job() is job and job.state.textinfo.startswith("Loss: ")
    engine.interrupt()
    result = job.result(timeout=120)
    assert result.interrupted and 0 < result.steps < 400
    from webui.engine.networks.common import read_safetensors_metadata

    assert read_safetensors_metadata(result.path)["ss_steps"] == str(result.steps)
    assert result.path.with_name("mylora.safetensors.optim").is_file()
    resumed = engine.train(lora_request(tmp_path, steps=result.steps + 3, batch_size=1, resume=True))
    assert resumed.steps == result.steps + 3 and resumed.losses[0][0] == result.steps + 1
    with pytest.raises(TrainingError, match="already been trained"):
        engine.train(lora_request(tmp_path, steps=2, resume=True))


def test_embedding_in_a1111_format_loads_by_its_word(engine, tmp_path):
    engine.load_checkpoint()
    before = weights(engine)
    result = engine.train(TrainingRequest("embedding", "mything", image_dir=make_images(tmp_path / "e"), steps=3,
                                          num_vectors=2, init_text="ball", batch_size=2, sample_every=3))
    assert_same(before, weights(engine))
    data = torch.load(str(result.path), weights_only=True)
    assert result.path.suffix == ".pt" and data["name"] == "mything" and data["step"] == 3
    width = engine.active_model().components["text_encoder"].get_input_embeddings().weight.shape[1]
    assert data["string_to_param"]["*"].shape == (2, width) and data["string_to_token"] == {"*": 265}
    assert engine.list_embeddings()["loaded"]["mything"]["vectors"] == 2
    plain = engine.generate(engine.request_defaults(prompt="a ball", seed=2, steps=3, width=64, height=64))
    word = engine.generate(engine.request_defaults(prompt="a mything", seed=2, steps=3, width=64, height=64))
    assert "mything" in word.infotexts[0]  # TI hashes
    assert np.abs(np.asarray(plain.images[0], float) - np.asarray(word.images[0], float)).mean() > 0.1


def test_create_embedding_starts_from_the_init_text(engine):
    engine.load_checkpoint()
    path = engine.create_embedding("fresh", num_vectors=3, init_text="red ball")
    data = torch.load(str(path), weights_only=True)
    model = engine.active_model()
    tok, te = model.components["tokenizer"], model.components["text_encoder"]
    ids = tok("red ball", add_special_tokens=False).input_ids
    table = te.get_input_embeddings().weight.detach().float()
    vec = data["string_to_param"]["*"]
    assert torch.equal(vec[0], table[ids[0]]) and torch.equal(vec[2], table[ids[1]]) and data["step"] == 0
    with pytest.raises(TrainingError, match="already exists"):
        engine.create_embedding("fresh")


def test_sdxl_lora_and_embedding(engine, tmp_path):
    engine.load_checkpoint("tiny-sdxl")
    before = weights(engine)
    lora = engine.train(lora_request(tmp_path, name="xl", steps=2))
    emb = engine.train(TrainingRequest("embedding", "xlthing", image_dir=tmp_path / "imgs", steps=2))
    assert_same(before, weights(engine))
    from safetensors.torch import load_file

    keys = load_file(str(lora.path))
    assert any(k.startswith("lora_te1_") for k in keys) and any(k.startswith("lora_te2_") for k in keys)
    assert lora.metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert set(load_file(str(emb.path))) == {"clip_l", "clip_g"}
    out = engine.generate(engine.request_defaults(prompt="xlthing <lora:xl:1>", seed=1, steps=2, width=64,
                                                  height=64))
    assert out.images and not out.warnings


@pytest.mark.parametrize("case, message", [
    ("no images", "No training images"),
    ("unreadable", "Cannot read training image broken.png"),
    ("exists", "already exists"),
    ("resume nothing", "Nothing to resume"),
    ("bad name", "cannot be a file name"),
    ("bad lr", "learning rate"),
])
def test_bad_input_is_refused_before_the_queue(engine, tmp_path, case, message):
    folder = make_images(tmp_path / "ok")
    kw = {"image_dir": folder, "steps": 2}
    name = "x"
    if case == "no images":
        kw["image_dir"] = (tmp_path / "empty")
        kw["image_dir"].mkdir()
    elif case == "unreadable":
        (folder / "broken.png").write_bytes(b"not a png")
    elif case == "exists":
        (engine.settings.models_root / "Lora").mkdir(parents=True)
        (engine.settings.models_root / "Lora" / "x.safetensors").write_bytes(b"")
    elif case == "resume nothing":
        kw["resume"] = True
    elif case == "bad name":
        name = "../up"
    elif case == "bad lr":
        kw["learning_rate"] = "fast"
    with pytest.raises(TrainingError, match=message):
        engine.submit_training(TrainingRequest("lora", name, **kw))
    assert engine.queue_length() == 0 and engine.current_job() is None


def test_running_out_of_memory_is_said_and_saves_nothing(engine, tmp_path, monkeypatch):
    from webui.engine.training.trainer import Trainer

    def oom(self, step):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", oom)  # a test double for a GPU that is too small
    engine.load_checkpoint()
    with pytest.raises(TrainingError, match="Not enough memory .* lower the batch size"):
        engine.train(lora_request(tmp_path))
    assert not (engine.settings.models_root / "Lora" / "mylora.safetensors").exists()


def test_buckets_keep_aspect_ratios():
    from webui.engine.training.dataset import bucket_sizes, prepare

    sizes = bucket_sizes(512)
    assert (512, 512) in sizes and (640, 384) in sizes and (384, 640) in sizes
    assert all(w % 64 == 0 and h % 64 == 0 and max(w, h) / min(w, h) <= 2 for w, h in sizes)
    wide = Image.new("RGB", (1000, 500))
    tall = Image.new("RGB", (300, 600))
    out = prepare([(wide, "", "w"), (tall, "", "t")], 512, buckets=True, multiple=64)
    assert out[0].image.width > out[0].image.height and out[1].image.height > out[1].image.width
    square = prepare([(wide, "", "w")], 512, buckets=False, multiple=64)
    assert square[0].image.size == (512, 512)


def test_learning_rate_schedule_as_a1111_writes_it():
    from webui.engine.training.request import parse_learning_rate, rate_at

    sched = parse_learning_rate("0.005:100, 1e-3:1000, 1e-5", 3000)
    assert [rate_at(sched, s) for s in (0, 99, 100, 999, 1000, 2999)] == [0.005, 0.005, 1e-3, 1e-3, 1e-5, 1e-5]
    assert json.dumps(parse_learning_rate(0.01, 10)) == "[[0.01, 10]]"
