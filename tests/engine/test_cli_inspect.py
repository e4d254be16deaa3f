"""`python app.py inspect` end to end in a subprocess: the files of the issue's layout, with infotext."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "app.py", "inspect", *args], cwd=ROOT, env=env, capture_output=True, check=False,
                          text=True, timeout=300)


def test_inspect_writes_tokens_steps_attention_and_walk(data_dir):
    out = data_dir / "inspected"
    p = run("--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--prompt", "a red circle BREAK blue", "--seed", "7",
            "--steps", "3", "--sampler", "Euler", "--walk-to-seed", "8", "--frames", "3", "--out", str(out))
    assert p.returncode == 0, p.stderr
    tokens = json.loads((out / "tokens.json").read_text())
    assert len(tokens["chunks"]) == 2 and tokens["chunks"][0]["ended_by_break"]
    assert [t["word"] for t in tokens["chunks"][0]["tokens"][:4]] == ["<|startoftext|>", "a", "red", "circle"]
    assert sorted(x.name for x in (out / "steps").glob("0*.png")) == ["01.png", "02.png", "03.png"]
    info = parse_infotext(read_infotext(out / "steps" / "02.png"))
    assert info["Seed"] == "7" and info["Steps"] == "3"
    assert sorted(x.name for x in (out / "attention").iterdir()) == ["a.png", "blue.png", "circle.png", "red.png"]
    npz = np.load(out / "attention.npz")
    assert npz["maps"].shape == (4, 8, 8) and list(npz["tokens"]) == ["a", "red", "circle", "blue"]
    assert list(npz["positions"]) == [1, 2, 3, 78]  # "blue" is the first token of the second chunk
    walk = Image.open(out / "walk.webp")
    assert walk.n_frames == 4
    assert parse_infotext(read_infotext(out / "walk" / "02.png"))["Seed"] == "8"
    assert read_infotext(out / "image.png") == read_infotext(out / "walk" / "00.png")
    assert not (data_dir / "outputs" / "inspect-images").exists()  # --out only, unless --save


def test_inspect_reports_bad_input_in_one_line(data_dir):
    p = run("--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--prompt", "x", "--steps", "3",
            "--attention-steps", "2-9", "--out", str(data_dir / "o"))
    assert p.returncode == 2 and "error: attention_steps must be step numbers from 1 to 3" in p.stderr
    p = run("--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--prompt", "x", "--layers", "left",
            "--out", str(data_dir / "o"))
    assert p.returncode == 2 and "attention_layers" in p.stderr
