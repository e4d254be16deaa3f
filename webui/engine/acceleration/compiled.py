"""--compile: torch.compile of the UNet and of the VAE decode, built once per model and kept across jobs.

`dynamic=False`: each new input shape (image size, batch size, prompt length in 75-token chunks, with or without
CFG) compiles once more, and is reused after (torch keeps up to `torch._dynamo.config.cache_size_limit` shapes per
function; past that the call runs eagerly). The first image at a new size pays the compile time.
LoRA weights are fused into the UNet's weights in place, so changing LoRA weights needs no recompile; loading a new
LoRA (new peft layers) makes torch recompile on the next call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from webui.engine.acceleration.state import model_state


@dataclass
class _Compiled:
    unet_source: Any = None
    unet: Any = None
    decoders: dict | None = None  # id(vae) -> (vae, compiled decode)


class TorchCompile:
    name = "compile"

    def __init__(self, mode: str | None = None, backend: str = "inductor"):
        self.mode = mode  # torch.compile's mode (None: its default)
        self.backend = backend  # "inductor" (the real one); the CPU tests use "aot_eager" (no C++ build, seconds)

    def _compile(self, fn):
        options = {"mode": self.mode} if self.mode and self.backend == "inductor" else {}
        return torch.compile(fn, dynamic=False, backend=self.backend, **options)

    def _state(self, model) -> _Compiled:
        return model_state(model, self.name, _Compiled)

    def unet(self, model) -> torch.nn.Module:
        st = self._state(model)
        unet = model.components["unet"]
        if st.unet_source is not unet:  # a new UNet object (never for the same model today): compile it
            st.unet_source, st.unet = unet, self._compile(unet)
        return st.unet

    def decoder(self, model, vae):
        st = self._state(model)
        st.decoders = st.decoders or {}
        entry = st.decoders.get(id(vae))
        if entry is None or entry[0] is not vae:
            entry = (vae, self._compile(vae.decode))
            st.decoders[id(vae)] = entry
        decode = entry[1]
        scale = vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None) or 0.0

        def run(latents: torch.Tensor) -> torch.Tensor:
            param = next(vae.parameters())
            return decode((latents.to(param.device, vae.dtype) / scale + shift), return_dict=False)[0]

        return run
