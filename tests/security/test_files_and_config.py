"""Issue 15, items 10 and 11: leftovers of a crash are cleaned at start-up, and a settings file cut at a point that
still parses cannot break the app (each bad value is reported, gets its default, and the file is kept aside)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from webui.settings import Settings, load_user_settings


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_are_removed_at_start(tmp_path):
    from webui.engine.facade import Engine

    day = tmp_path / "outputs" / "txt2img-images" / "2026-12-01"
    day.mkdir(parents=True)
    (day / "00001-101.png").write_bytes(b"finished image")
    old = day / ".00002-102.png.0123456789ab.tmp"  # the probe's leftover (no pid in the name)
    old.write_bytes(b"half a png")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    dead = day / f".00003-103.png.{_dead_pid()}.abcdef012345.tmp"
    dead.write_bytes(b"half a png")
    live = day / f".00004-104.png.{os.getppid()}.abcdef012345.tmp"  # its writer still runs: kept
    live.write_bytes(b"being written")
    other = day / ".notes.tmp"  # not ours: kept
    other.write_text("x")
    config_temp = tmp_path / f".config.yaml.{_dead_pid()}.00aa11bb22cc.tmp"
    config_temp.write_text("queue_size: 3\n")

    engine = Engine(Settings(data_dir=tmp_path))
    engine.close()
    assert sorted(p.name for p in day.iterdir()) == sorted(["00001-101.png", live.name, other.name])
    assert not config_temp.exists()


def test_another_machines_temp_files_are_kept_until_no_write_could_still_run(tmp_path):
    """A shared outputs folder (replicas on several machines): a pid of another host says nothing here."""
    from webui.files import FOREIGN_AGE, _host, remove_stale_temps, temp_name

    assert f"{os.getpid()}@{_host()}." in temp_name("00001-1.png")
    dead_here = tmp_path / f".00001-1.png.{_dead_pid()}@{_host()}.abcdef012345.tmp"
    fresh_there = tmp_path / f".00002-2.png.{_dead_pid()}@other-node-7.abcdef012345.tmp"
    old_there = tmp_path / f".00003-3.png.{_dead_pid()}@other-node-7.abcdef012345.tmp"
    for path in (dead_here, fresh_there, old_there):
        path.write_bytes(b"half a png")
    past = time.time() - FOREIGN_AGE - 60
    os.utime(old_there, (past, past))
    assert sorted(remove_stale_temps(tmp_path)) == sorted([dead_here, old_there])
    assert fresh_there.exists()


def test_a_write_killed_before_the_rename_leaves_a_temp_file_the_next_start_removes(tmp_path):
    from webui.files import remove_stale_temps

    code = ("import os, sys\n"
            "from PIL import Image\n"
            "from webui.engine import image_files\n"
            "image_files.os.replace = lambda *a: os._exit(9)  # killed between the write and the rename\n"
            "image_files.save_image_with_infotext(Image.new('RGB', (8, 8)), sys.argv[1], 'a cat\\nSteps: 1')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "00002-102.png")], check=False, cwd=ROOT)
    assert done.returncode == 9
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".00002-102.png.")
    assert remove_stale_temps(tmp_path) == leftovers and not any(tmp_path.iterdir())


@pytest.mark.parametrize("text, name, default", [
    ("max_image_side: 20\n", "max_image_side", 2048),
    ("queue_size:\n", "queue_size", 32),
    ("checkpoint_cache_size:\n", "checkpoint_cache_size", 1),
    ("queue_size: 0\n", "queue_size", 32),
    ("default_cfg_scale: .nan\n", "default_cfg_scale", 7.0),
    ("default_sampler: Warp Drive\n", "default_sampler", "DPM++ 2M"),
    ("save_images: maybe\n", "save_images", True),
])
def test_bad_values_in_the_settings_file_get_their_default(tmp_path, text, name, default):
    (tmp_path / "config.yaml").write_text("default_steps: 11\n" + text)
    settings, notice = load_user_settings(Settings(data_dir=tmp_path))
    assert getattr(settings, name) == default
    assert settings.default_steps == 11  # the good values are kept
    assert name in notice
    kept = list(tmp_path.glob("config.yaml.invalid-*"))
    assert len(kept) == 1 and kept[0].read_text() == "default_steps: 11\n" + text


def test_app_starts_and_generates_with_a_cut_settings_file(tmp_path, api_models):
    """`checkpoint_cache_size:` stopped start-up with no notice; `queue_size:` failed every job."""
    from webui.cli import build_parser, settings_from_args
    from webui.engine.facade import Engine

    ckpts = tmp_path / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    (ckpts / "tiny-a.safetensors").symlink_to(api_models["a"])
    (tmp_path / "config.yaml").write_text("checkpoint_cache_size:\nqueue_size:\nmax_image_side: 20\n")
    settings, notice = settings_from_args(build_parser().parse_args(["--data-dir", str(tmp_path)]))
    assert all(n in notice for n in ("checkpoint_cache_size", "queue_size", "max_image_side"))
    engine = Engine(settings)
    try:
        result = engine.generate(engine.request_defaults(prompt="a cat", steps=1, width=64, height=64, seed=3))
        assert len(result.images) == 1 and result.paths[0].exists()
        assert engine.queue.maxsize == 32  # bounded
    finally:
        engine.close()
