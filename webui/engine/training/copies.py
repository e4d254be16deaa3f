"""Copies of the loaded model's UNet and text encoder(s) to train on, so that nothing a training run does can
reach the model that generates: the live modules are only read (their base weights, with any fused LoRA taken
out), and the copies are dropped when the run ends."""
from __future__ import annotations

import copy

import torch


def _fused_originals(model, component: str) -> dict[str, torch.Tensor]:
    """Module name -> original weight of the modules into which a LoRA is fused right now (networks/lora.py keeps
    a copy of each before fusing)."""
    loras = getattr(model, "loras", None)
    if loras is None:
        return {}
    return loras.fused_originals(component)


def base_state_dict(module: torch.nn.Module, originals: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The module's own weights: PEFT adapter tensors left out, `x.base_layer.weight` named `x.weight`, fused
    LoRA weights replaced by the originals."""
    out = {}
    for key, value in module.state_dict().items():
        if ".lora_" in key or key.startswith("lora_"):
            continue
        out[key.replace(".base_layer.", ".")] = value
    for name, weight in originals.items():
        out[f"{name}.weight"] = weight
    return out


def clean_copy(model, component: str, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A fresh module of the same class and config holding the component's base weights (no adapters)."""
    live = model.components[component]
    state = base_state_dict(live, _fused_originals(model, component))
    param = next(live.parameters())
    if hasattr(live, "peft_config") or any(".base_layer." in k for k in live.state_dict()):
        fresh = _from_config(live)
        with torch.no_grad():
            fresh.load_state_dict(state, strict=True)
    else:  # no adapter was ever loaded into it (so none is fused): a plain copy
        fresh = copy.deepcopy(live)
    if dtype is not None and dtype != param.dtype:
        fresh = fresh.to(dtype=dtype)
    return fresh.to(param.device).requires_grad_(False)


def _from_config(live: torch.nn.Module) -> torch.nn.Module:
    cls = type(live)
    if hasattr(cls, "from_config"):  # diffusers
        return cls.from_config(live.config)
    return cls(live.config)  # transformers
