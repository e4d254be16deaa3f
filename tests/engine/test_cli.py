"""`python app.py generate` end to end in a subprocess: saved files, their infotext, clear errors."""
import os
import subprocess
import sys
from pathlib import Path

from webui.engine.image_files import read_infotext
from webui.engine.infotext import parse_infotext

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "app.py", "generate", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_generate_saves_images_with_infotext(data_dir):
    out = data_dir / "elsewhere"
    p = run("--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--prompt", "a red, circle", "--negative-prompt",
            "blue", "--steps", "4", "--seed", "77", "--batch-size", "2", "--sampler", "DPM++ 2M Karras",
            "--outdir", str(out))
    assert p.returncode == 0, p.stderr
    paths = [Path(line) for line in p.stdout.split()]
    assert [x.name for x in paths] == ["00000-77.png", "00001-78.png"]
    assert all(x.exists() and out in x.parents for x in paths)
    info = parse_infotext(read_infotext(paths[1]))
    assert (info["Prompt"], info["Negative prompt"], info["Seed"], info["Steps"]) == ("a red, circle", "blue", "78", "4")
    assert (info["Sampler"], info["Schedule type"], info["Model"]) == ("DPM++ 2M", "Karras", "tiny-sd1")
    assert info["Size-1"] == "64"  # the model's native size from its metadata


def test_generate_reports_bad_input_clearly(data_dir):
    p = run("--data-dir", str(data_dir), "--ckpt", "no-such-model", "--prompt", "x")
    assert p.returncode == 2 and "no-such-model" in p.stderr and "tiny-sd1.safetensors" in p.stderr
    p = run("--data-dir", str(data_dir), "--ckpt", "tiny-sd1", "--prompt", "x", "--sampler", "Bogus")
    assert p.returncode == 2 and "Unknown sampler 'Bogus'" in p.stderr


def test_flags_before_generate_are_kept_and_flags_after_it_win():
    from webui.flags import build_parser

    args = build_parser().parse_args(["--device", "cpu", "--ckpt-dir", "a", "generate", "--prompt", "x"])
    assert (args.device, args.ckpt_dir, args.command) == ("cpu", [Path("a")], "generate")
    args = build_parser().parse_args(["--device", "cpu", "generate", "--prompt", "x", "--device", "mps"])
    assert args.device == "mps"
    args = build_parser().parse_args(["generate", "--prompt", "x"])
    assert (args.device, args.ckpt_dir, args.precision) == ("auto", [], "auto")


def test_checkpoint_cache_flag_reaches_settings_and_refuses_zero(tmp_path, capsys):
    import pytest

    from webui.flags import build_parser, settings_from_args

    settings, _ = settings_from_args(build_parser().parse_args(["--data-dir", str(tmp_path), "--checkpoint-cache", "3"]))
    assert settings.checkpoint_cache_size == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--checkpoint-cache", "0"])
    assert "must be at least 1" in capsys.readouterr().err
