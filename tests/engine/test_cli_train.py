"""`python app.py train-lora` / `train-embedding` end to end in a subprocess: the file lands in the folder the
folder flags name, its path is printed last; bad input is one clear line and exit status 2."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def run(command, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "app.py", command, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def images(folder: Path, n=2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (64, 64), (0, 200, 210 - 30 * i)).save(folder / f"{i}.png")
    return folder


def test_train_lora_writes_into_the_lora_dir_and_prints_its_path(data_dir, tmp_path):
    lora_dir = tmp_path / "my-loras"
    p = run("train-lora", "--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--lora-dir", str(lora_dir),
            "--images", str(images(tmp_path / "imgs")), "--name", "clilora", "--trigger", "zq", "--steps", "3",
            "--rank", "4", "--sample-every", "3")
    assert p.returncode == 0, p.stderr
    path = Path(p.stdout.split()[-1])
    assert path == lora_dir / "clilora.safetensors" and path.is_file()
    assert "trained for 3 steps" in p.stderr and "loss=" in p.stderr
    assert (data_dir / "outputs" / "train-samples" / "clilora" / "000003.png").is_file()
    again = run("train-lora", "--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--lora-dir", str(lora_dir),
                "--images", str(tmp_path / "imgs"), "--name", "clilora", "--steps", "3")
    assert again.returncode == 2 and "error: clilora.safetensors already exists" in again.stderr
    assert "--overwrite" in again.stderr


def test_train_embedding_into_the_embeddings_dir(data_dir, tmp_path):
    emb_dir = tmp_path / "embs"
    p = run("train-embedding", "--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--embeddings-dir", str(emb_dir),
            "--images", str(images(tmp_path / "imgs")), "--name", "cliemb", "--init-text", "ball", "--steps", "2")
    assert p.returncode == 0, p.stderr
    path = Path(p.stdout.split()[-1])
    assert path == emb_dir / "cliemb.pt" and torch.load(str(path), weights_only=True)["step"] == 2


def test_training_errors_are_one_line(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run("train-lora", "--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--images", str(empty), "--name", "x")
    assert p.returncode == 2 and f"error: No training images in {empty}" in p.stderr
    assert "Traceback" not in p.stderr
