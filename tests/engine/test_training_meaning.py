"""What training teaches, on the built-in shapes model (issue 20), measured in pixels:

* a LoRA trained with the CLI's defaults on 5 images of a colour the model never saw (cyan: its vocabulary is
  red, orange, yellow, green, blue, purple, white, black) draws it with its trigger word in most seeds, and the
  model without the LoRA does not; the file loads through <lora:name:1> and its metadata reads back;
* an embedding taught a picture the model can already draw from other words ("a large yellow triangle in the
  center on a purple background") brings it back from its word alone: the yellow shape in most seeds, the purple
  background in more seeds than before (one vector learns the shape's colour surely, the background less so).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.fixtures.shapes_classifier import classify

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "models" / "Stable-diffusion" / "latent-studio-shapes-v1.safetensors"
CYAN = np.array([0, 200, 210])
SEEDS = range(8)


def app_dir(tmp_path) -> Path:
    data = tmp_path / "app"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    (data / "models" / "Stable-diffusion" / BUILTIN.name).symlink_to(BUILTIN)
    return data


def cyan_circles(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = random.Random(0)
    for i in range(5):
        im = Image.new("RGB", (64, 64), (245, 245, 245))
        cx, cy = rng.choice([16, 32, 48]), rng.choice([16, 32, 48])
        ImageDraw.Draw(im).ellipse([cx - 11, cy - 11, cx + 11, cy + 11], fill=tuple(CYAN))
        im.save(folder / f"{i}.png")
    return folder


def draws_cyan(image) -> bool:
    """A cyan blob (at least 1.5% of the pixels within 60 of the taught colour) on a white background."""
    arr = np.asarray(image.convert("RGB"), dtype=float)
    near = (np.linalg.norm(arr - CYAN, axis=-1) < 60).mean()
    return near >= 0.015 and classify(image).background == "white"


def engine_for(data: Path):
    from webui.engine import Engine
    from webui.settings import Settings

    engine = Engine(Settings(data_dir=data))
    engine.load_checkpoint()
    return engine


def images(engine, prompt: str) -> list:
    return [engine.generate(engine.request_defaults(prompt=prompt, seed=s, steps=20)).images[0] for s in SEEDS]


@pytest.mark.slow
def test_cli_default_lora_teaches_a_colour_the_model_never_saw(tmp_path):
    data = app_dir(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "app.py", "train-lora", "--data-dir", str(data), "--images",
                        str(cyan_circles(tmp_path / "cyan")), "--name", "cyan", "--trigger", "zq", "--seed", "0"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert p.returncode == 0, p.stderr
    path = Path(p.stdout.split()[-1])
    assert path == data / "models" / "Lora" / "cyan.safetensors"
    engine = engine_for(data)
    try:
        with_lora = [draws_cyan(im) for im in images(engine, "<lora:cyan:1> zq")]
        without = [draws_cyan(im) for im in images(engine, "zq")]
        assert sum(with_lora) >= 6 and sum(without) <= 1, (with_lora, without)
        meta = {i.name: i for i in engine.list_loras()}["cyan"].metadata  # what /sdapi/v1/loras returns
        assert meta["ss_output_name"] == "cyan" and meta["ss_num_train_images"] == "5"
        assert meta["ss_max_train_steps"] == meta["ss_steps"] and meta["ss_base_model_version"] == "sd_v1"
        assert meta["ss_sd_model_name"] == BUILTIN.name and meta["ss_resolution"] == "(64, 64)"
        assert meta["ss_tag_frequency"] == {"cyan": {"zq": 5}} and meta["modelspec.trigger_phrase"] == "zq"
    finally:
        engine.close()


@pytest.mark.slow
def test_an_embedding_brings_back_a_picture_from_its_word_alone(tmp_path):
    from webui.engine import TrainingRequest
    from webui.training import shapes

    data = app_dir(tmp_path)
    folder = tmp_path / "yt"
    folder.mkdir()
    rng = random.Random(0)
    target = shapes.Sample(shape="triangle", color="yellow", background="purple", size="large", position="center")
    for i in range(5):
        shapes.render(target, 64, rng).save(folder / f"{i}.png")

    def seen(prompt):
        found = [classify(im) for im in images(engine, prompt)]
        return [c.color == "yellow" for c in found], [c.background == "purple" for c in found]

    engine = engine_for(data)
    try:
        yellow_before, purple_before = seen("lsyt")
        result = engine.train(TrainingRequest("embedding", "lsyt", image_dir=folder, seed=0))  # the defaults
        yellow, purple = seen("lsyt")
        assert result.path == data / "embeddings" / "lsyt.pt"
        assert sum(yellow) >= 6 and sum(yellow_before) <= 1, (yellow_before, yellow)
        assert sum(purple) >= 3 and sum(purple) > sum(purple_before), (purple_before, purple)
    finally:
        engine.close()
