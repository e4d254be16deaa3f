"""ControlNet weights in the single-file layout A1111 users download, both ways.

The files of lllyasviel's ControlNet (``control_v11p_sd15_canny.pth`` and their
``.safetensors`` conversions) hold the original ``cldm`` names, sometimes under a
``control_model.`` prefix:

=============================  ==================================================
LDM (cldm) name                diffusers ``ControlNetModel``
=============================  ==================================================
``time_embed.0 / .2``          ``time_embedding.linear_1 / linear_2``
``input_blocks.*``             ``conv_in``, ``down_blocks.*`` (as in the UNet)
``middle_block.*``             ``mid_block.*``
``input_hint_block.0, 2k, N``  ``controlnet_cond_embedding.conv_in / blocks.k-1 / conv_out``
``zero_convs.i.0``             ``controlnet_down_blocks.i``
``middle_block_out.0``         ``controlnet_mid_block``
``label_emb.0.0 / .0.2``       ``add_embedding.linear_1 / linear_2`` (SDXL)
=============================  ==================================================

Reading uses diffusers' own converter (``convert_controlnet_checkpoint``); it has
no SDXL ``label_emb`` rule, which is added here.  Writing (diffusers -> LDM) has
no library function: the UNet part reuses the mapping of
:mod:`webui.engine.checkpoints.ldm_export`, the ControlNet-only parts are the
table above.  Many SDXL ControlNets are shared as a diffusers state dict in one
file instead (``diffusers_xl_canny_mid.safetensors``); those need no renaming.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from webui.engine.checkpoints import ldm_export as lx

PREFIX = "control_model."


def is_diffusers_layout(keys) -> bool:
    return any(k.startswith("controlnet_cond_embedding.") for k in keys)


def strip_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith(PREFIX) for k in sd):
        return {k[len(PREFIX):]: v for k, v in sd.items() if k.startswith(PREFIX)}
    return dict(sd)


def to_diffusers(sd: Mapping[str, torch.Tensor], config: Mapping) -> dict[str, torch.Tensor]:
    """A ControlNet state dict (LDM or diffusers names) in diffusers names."""
    from diffusers.loaders import single_file_utils as sfu

    sd = strip_prefix(sd)
    if is_diffusers_layout(sd):
        return sd
    out = sfu.convert_controlnet_checkpoint(sd, dict(config))
    for i, j in ((1, 0), (2, 2)):  # SDXL's additional (text, time) embedding
        for kind in ("weight", "bias"):
            if f"label_emb.0.{j}.{kind}" in sd:
                out[f"add_embedding.linear_{i}.{kind}"] = sd[f"label_emb.0.{j}.{kind}"]
    return {k: v for k, v in out.items() if v is not None}


def to_ldm(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A diffusers ``ControlNetModel``'s weights in LDM names (no prefix, as the v1.1 files)."""
    none: dict[str, str] = {}
    pm: dict[str, tuple[str, Mapping[str, str]]] = {
        "time_embedding.linear_1": ("time_embed.0", none),
        "time_embedding.linear_2": ("time_embed.2", none),
        "conv_in": ("input_blocks.0.0", none),
        "controlnet_cond_embedding.conv_in": ("input_hint_block.0", none),
        "controlnet_mid_block": ("middle_block_out.0", none),
    }
    emb = net.controlnet_cond_embedding
    for k in range(len(emb.blocks)):
        pm[f"controlnet_cond_embedding.blocks.{k}"] = (f"input_hint_block.{2 * (k + 1)}", none)
    pm["controlnet_cond_embedding.conv_out"] = (f"input_hint_block.{2 * (len(emb.blocks) + 1)}", none)
    for i in range(len(net.controlnet_down_blocks)):
        pm[f"controlnet_down_blocks.{i}"] = (f"zero_convs.{i}.0", none)
    if lx._has_params(getattr(net, "add_embedding", None)):
        pm["add_embedding.linear_1"] = ("label_emb.0.0", none)
        pm["add_embedding.linear_2"] = ("label_emb.0.2", none)
    idx = 1
    for i, block in enumerate(net.down_blocks):
        attentions = getattr(block, "attentions", None)
        for j in range(len(block.resnets)):
            pm[f"down_blocks.{i}.resnets.{j}"] = (f"input_blocks.{idx}.0", lx._UNET_RESNET)
            if attentions is not None and j < len(attentions):
                pm[f"down_blocks.{i}.attentions.{j}"] = (f"input_blocks.{idx}.1", none)
            idx += 1
        if getattr(block, "downsamplers", None):
            pm[f"down_blocks.{i}.downsamplers.0.conv"] = (f"input_blocks.{idx}.0.op", none)
            idx += 1
    mid = net.mid_block
    for j in range(len(mid.resnets)):
        pm[f"mid_block.resnets.{j}"] = (f"middle_block.{2 * j}", lx._UNET_RESNET)
    for j in range(len(getattr(mid, "attentions", None) or [])):
        pm[f"mid_block.attentions.{j}"] = (f"middle_block.{2 * j + 1}", none)
    return lx._apply_prefix_map(net.state_dict(), pm, "ControlNet")


def save_controlnet(net: torch.nn.Module, path: str | Path, metadata: dict | None = None,
                    dtype: torch.dtype = torch.float16) -> None:
    """Write ``net`` as one ``.safetensors`` file in the LDM layout (fp16 by default), atomically."""
    sd = {k: v.detach().to(dtype).contiguous() for k, v in to_ldm(net).items()}
    lx.save_single_file(path, sd, metadata or {})
