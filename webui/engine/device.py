"""Device, precision and attention: chosen once, at start-up, from Settings (never at import)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype
    attention: str  # "sdpa" | "xformers"
    offload: str = "none"  # "none" | "model" (--medvram) | "sequential" (--lowvram)
    attention_slicing: bool = False
    notices: tuple[str, ...] = field(default_factory=tuple)
    vae_tiling_side: int = 1536  # decode tiled above this many pixels on a side
    accelerator: object = field(default=None, compare=False)  # --compile / --backend openvino (acceleration/)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        dt = str(self.dtype).removeprefix("torch.")
        fast = f", {self.accelerator.name}" if self.accelerator is not None else ""
        return f"{self.device} {dt}, attention {self.attention}, offload {self.offload}{fast}"


def _pick_device(wish: str) -> torch.device:
    if wish and wish != "auto":
        dev = torch.device(wish)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"--device {wish} asked for, but CUDA is not available on this machine")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"--device {wish} asked for, but MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def xformers_usable() -> tuple[bool, str]:
    """xformers only counts when CUDA is present and `import xformers.ops` really works."""
    if not torch.cuda.is_available():
        return False, "xformers needs CUDA, which is not available"
    try:
        import xformers.ops  # noqa: F401
    except Exception as exc:  # broken wheels raise all sorts of errors
        return False, f"xformers could not be imported ({type(exc).__name__}: {exc})"
    return True, "xformers available"


def select_device(settings) -> DeviceConfig:
    notices: list[str] = []
    openvino = getattr(settings, "backend", "pytorch") == "openvino"
    device = _pick_device("cpu" if openvino and settings.device in ("", "auto") else settings.device)
    if settings.precision == "fp16" or (settings.precision == "auto" and device.type == "cuda"):
        dtype = torch.float16
    else:
        dtype = torch.float32
    if dtype == torch.float16 and device.type == "cpu":
        notices.append("fp16 is not useful on CPU; using fp32")
        dtype = torch.float32

    attention = "sdpa"
    if settings.xformers:
        ok, why = xformers_usable()
        if ok:
            attention = "xformers"
        else:
            notices.append(f"--xformers ignored: {why}; using PyTorch SDPA attention")

    offload = "none"
    if settings.lowvram or settings.medvram:
        if device.type == "cuda":
            offload = "sequential" if settings.lowvram else "model"
        else:
            notices.append(f"--{'lowvram' if settings.lowvram else 'medvram'} only applies to CUDA; ignored on {device}")
    accelerator = _accelerator(settings, device, offload, notices)
    for n in notices:
        log.warning(n)
    return DeviceConfig(device, dtype, attention, offload, settings.attention_slicing, tuple(notices),
                        settings.vae_tiling_threshold, accelerator)


def _accelerator(settings, device: torch.device, offload: str, notices: list[str]):
    """--backend openvino (CPU only; the package must import) or --compile (not with CPU offload), else None."""
    if getattr(settings, "backend", "pytorch") == "openvino":
        from webui.engine.acceleration import openvino

        ok, why = openvino.available()
        if not ok:
            raise RuntimeError(f"--backend openvino asked for, but {why}. Install it: "
                               "pip install -r requirements-openvino.txt")
        if device.type != "cpu":
            raise RuntimeError(f"--backend openvino runs on the CPU, but --device {settings.device} asks for "
                               f"{device}: leave out one of the two")
        if settings.compile:
            notices.append("--compile ignored: --backend openvino compiles the model itself")
        return openvino.OpenVinoBackend(settings.cache_path / "openvino", settings.openvino_precision)
    if getattr(settings, "compile", False):
        if offload != "none":
            notices.append("--compile ignored with --medvram/--lowvram (the offload hooks move the model while "
                           "it runs)")
            return None
        from webui.engine.acceleration.compiled import TorchCompile

        return TorchCompile()
    return None
