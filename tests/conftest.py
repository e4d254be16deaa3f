"""Shared test setup: offline, no network beyond loopback (any other connection fails the test), tiny models."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

# Nothing in the test suite may download from a hub.  Set before any huggingface library is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to open a connection to a non-local address."""


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test: a connection to anything but loopback fails the test."""

    def guard(original):
        def connect(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
                raise NetworkBlocked(f"network access attempted: {address!r}")
            return original(self, address, *args, **kwargs)

        return connect

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1", "0.0.0.0") and not _is_local((host,)):
            raise NetworkBlocked(f"DNS lookup attempted: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guard(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---- tiny models written once per session ------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    """Tiny checkpoints in every layout: {'sd1': path, 'sd1-b': other weights, 'sd1-ckpt', 'sdxl', ...}."""
    from tests.fixtures.tiny_models import make_tiny_pipeline, write_ckpt, write_diffusers_folder, write_single_file

    d = tmp_path_factory.mktemp("tiny-models")
    files = {}
    native = {"modelspec.resolution": "64x64"}
    sd1 = make_tiny_pipeline("sd1", seed=0)
    files["sd1"] = write_single_file(sd1, d / "tiny-sd1.safetensors", "sd1", native)
    files["sd1-ckpt"] = write_ckpt(sd1, d / "tiny-sd1-old.ckpt", "sd1")
    files["sd1-folder"] = write_diffusers_folder(sd1, d / "tiny-sd1-diffusers")
    files["sd1-b"] = write_single_file(make_tiny_pipeline("sd1", seed=1), d / "tiny-sd1-b.safetensors", "sd1", native)
    files["sd1-c"] = write_single_file(make_tiny_pipeline("sd1", seed=2), d / "tiny-sd1-c.safetensors", "sd1", native)
    files["sd1-inpaint"] = write_single_file(make_tiny_pipeline("sd1-inpaint", seed=0), d / "tiny-sd1-inpainting.safetensors", "sd1", native)
    files["sd2"] = write_single_file(make_tiny_pipeline("sd2", seed=0), d / "tiny-sd2.safetensors", "sd2", native)
    files["sd2-v"] = write_single_file(make_tiny_pipeline("sd2-v", seed=0), d / "tiny-sd2-v.safetensors", "sd2",
                                       {**native, "modelspec.prediction_type": "v"})
    files["sdxl"] = write_single_file(make_tiny_pipeline("sdxl", seed=0), d / "tiny-sdxl.safetensors", "sdxl", native)
    return files


@pytest.fixture
def data_dir(tmp_path, tiny_files):
    """A fresh app folder whose models/Stable-diffusion links to the session's tiny models."""
    ckpts = tmp_path / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    for key in ("sd1", "sd1-b", "sd1-c", "sd1-ckpt", "sdxl"):
        src = Path(tiny_files[key])
        (ckpts / src.name).symlink_to(src)
    return tmp_path


@pytest.fixture
def engine(data_dir):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    eng = Engine(Settings(data_dir=data_dir, ckpt="tiny-sd1", checkpoint_cache_size=2))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def face_models(tmp_path_factory):
    """Random-weight GFPGAN (.pth), CodeFormer and RestoreFormer (.safetensors): {kind: file}."""
    from tests.fixtures.face_models import write_face_models

    return write_face_models(tmp_path_factory.mktemp("face-models"))
