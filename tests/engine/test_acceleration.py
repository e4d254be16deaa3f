"""--backend openvino and --compile: the accelerated UNet/VAE decode give the image PyTorch gives for the same
seed (PSNR), the OpenVINO export is cached on disk and reused, and a backend that cannot run is refused at
start-up with the reason."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.builtin_generate import CHECKPOINT, LORA_DIR

PROMPT = "a small red circle at the top left on a blue background"


def psnr(a, b) -> float:
    x, y = (np.asarray(i, dtype=np.float64) for i in (a, b))
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _builtin_dir(tmp_path: Path, lora: bool = False) -> Path:
    ckpts = tmp_path / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    (ckpts / CHECKPOINT.name).symlink_to(CHECKPOINT)
    if lora:
        loras = tmp_path / "models" / "Lora"
        loras.mkdir(parents=True)
        for f in LORA_DIR.glob("latent-studio-*.safetensors"):
            (loras / f.name).symlink_to(f)
    return tmp_path


def _engine(data_dir: Path, **flags):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    return Engine(Settings(data_dir=data_dir, device="cpu", **flags))


def _image(engine, prompt: str = PROMPT, seed: int = 3, **extra):
    from webui.engine import GenerationRequest

    req = GenerationRequest(prompt=prompt, seed=seed, steps=8, sampler_name="Euler", width=64, height=64,
                            save_images=False, **extra)
    return engine.generate(req).images[0]


def test_openvino_refused_at_start_when_missing(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(RuntimeError, match=r"--backend openvino .*requirements-openvino\.txt"):
        _engine(_builtin_dir(tmp_path), backend="openvino")


def test_openvino_refused_on_a_gpu_device(tmp_path):
    pytest.importorskip("openvino")
    import torch

    from webui.engine.device import _accelerator
    from webui.settings import Settings

    with pytest.raises(RuntimeError, match="runs on the CPU"):
        _accelerator(Settings(data_dir=tmp_path, device="cuda", backend="openvino"), torch.device("cuda"), "none", [])


def test_openvino_flag_parses_into_settings():
    from webui.flags import build_parser, settings_from_args

    args = build_parser().parse_args(["--backend", "openvino", "--openvino-precision", "bf16", "--compile"])
    s, _ = settings_from_args(args)
    assert (s.backend, s.openvino_precision, s.compile) == ("openvino", "bf16", True)
    s, _ = settings_from_args(build_parser().parse_args([]))
    assert (s.backend, s.compile) == ("pytorch", False)  # never on by default


@pytest.mark.slow
def test_openvino_matches_pytorch_and_reuses_its_export(tmp_path):
    pytest.importorskip("openvino")
    data = _builtin_dir(tmp_path, lora=True)
    plain = _engine(data)
    try:
        want = _image(plain)
        want_lora = _image(plain, PROMPT + " <lora:latent-studio-invert:1>")
    finally:
        plain.close()
    fast = _engine(data, backend="openvino")
    try:
        backend = fast.device.accelerator
        got = _image(fast)
        assert backend.exports == 2  # the UNet and the VAE decoder
        assert psnr(got, want) > 35, psnr(got, want)
        assert np.asarray(got).std() > 10  # a real picture, not a flat one
        # a LoRA changes the UNet's weights: exported again with it fused, and the image follows the LoRA
        got_lora = _image(fast, PROMPT + " <lora:latent-studio-invert:1>")
        assert backend.exports == 3
        assert psnr(got_lora, want_lora) > 35, psnr(got_lora, want_lora)
        assert psnr(got_lora, got) < 25  # the LoRA really is in the exported UNet
        fast.unload_checkpoint()
        again = _image(fast)  # a fresh load of the same checkpoint: the export on disk is reused
        assert backend.exports == 3
        assert psnr(again, got) > 45
    finally:
        fast.close()
    exported = sorted(p.name.split("-")[0] for p in (data / "cache" / "openvino").iterdir() if p.name != "blobs")
    assert exported == ["unet", "unet", "vae"]


@pytest.mark.slow
def test_compile_matches_eager(tmp_path):
    """--compile's wiring: the UNet and VAE decode go through torch.compile (dynamo traces them), once per shape.
    The backend here is aot_eager: inductor's C++ build of even the built-in model takes many minutes on a 2-core
    CPU (the GPU bench measures the real thing)."""
    import dataclasses

    from torch._dynamo.utils import counters

    from webui.engine.acceleration.compiled import TorchCompile
    from webui.engine.device import select_device
    from webui.engine.facade import Engine
    from webui.settings import Settings

    data = _builtin_dir(tmp_path)
    plain = _engine(data)
    try:
        want = _image(plain)
    finally:
        plain.close()
    settings = Settings(data_dir=data, device="cpu", compile=True)
    device = select_device(settings)
    assert isinstance(device.accelerator, TorchCompile) and device.accelerator.backend == "inductor"
    fast = Engine(settings, device=dataclasses.replace(device, accelerator=TorchCompile(backend="aot_eager")))
    try:
        graphs = counters["stats"]["unique_graphs"]
        got = _image(fast)
        traced = counters["stats"]["unique_graphs"]
        assert traced > graphs  # the UNet and the decode really went through torch.compile
        again = _image(fast, seed=4)  # the same shapes: reused, nothing traced again
        assert counters["stats"]["unique_graphs"] == traced
        assert psnr(again, got) < 40  # another seed, another picture
        model = fast.active_model()
        assert fast.device.accelerator.unet(model) is fast.device.accelerator.unet(model)  # kept across jobs
    finally:
        fast.close()
    assert psnr(got, want) > 35, psnr(got, want)
