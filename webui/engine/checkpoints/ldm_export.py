"""Export diffusers modules to the original single-file Stable Diffusion layout.

The original (CompVis LDM / Stability "sgm") checkpoints, which A1111 and most
model sites use, hold every component in one flat state dict:

===========================  ==================================================
prefix                       component
===========================  ==================================================
``model.diffusion_model.``   UNet (``input_blocks`` / ``middle_block`` /
                             ``output_blocks`` / ``time_embed`` / ``out`` and,
                             for SDXL, ``label_emb``)
``first_stage_model.``       VAE (``encoder`` / ``decoder`` / ``quant_conv`` /
                             ``post_quant_conv``)
``cond_stage_model.``        SD1: ``transformer.text_model.*`` (HF CLIP names);
                             SD2: ``model.*`` (OpenCLIP names)
``conditioner.embedders.N``  SDXL: ``0.transformer.text_model.*`` (CLIP-L, HF
                             names) and ``1.model.*`` (OpenCLIP bigG).  The
                             refiner has only ``0.model.*`` (bigG).
===========================  ==================================================

This module goes from diffusers to that layout.  The mapping is derived from
the module structure (not from key patterns), so it works for any number of
levels, ``layers_per_block``, levels with or without attention,
``transformer_layers_per_block`` and linear or 1x1-conv ``proj_in``.  Every
parameter of every module must be mapped: an unknown key raises instead of
being silently dropped.

Notable layout facts:

* UNet resnets: ``norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut`` ->
  ``in_layers.0/in_layers.2/emb_layers.1/out_layers.0/out_layers.3/skip_connection``.
  Transformer blocks keep their diffusers names.  Downsamplers become their
  own ``input_blocks.N.0.op``; an upsampler is the last sub-module of the last
  ``output_blocks`` entry of its level (``.1.conv`` or ``.2.conv`` when the
  entry also has attention).
* VAE decoder levels are numbered in reverse (diffusers ``up_blocks.0`` is LDM
  ``up.{n-1}``); the mid attention's linear ``to_q/to_k/to_v/to_out.0`` become
  1x1 convs ``q/k/v/proj_out`` (weights ``[C, C, 1, 1]``).
* OpenCLIP stores q, k and v as one ``in_proj_weight`` ``[3*D, D]`` (q, k, v
  concatenated on dim 0) and ``text_projection`` as ``[D, P]`` (the transpose
  of ``nn.Linear.weight``).  The diffusers SD2 text encoder is a plain
  ``CLIPTextModel`` with no projection, so none is written for it; OpenCLIP's
  ``logit_scale`` has no diffusers counterpart and is not written either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import torch

__all__ = [
    "FAMILIES",
    "UNET_PREFIX",
    "VAE_PREFIX",
    "unet_to_ldm",
    "vae_to_ldm",
    "clip_to_ldm",
    "clip_to_open_clip",
    "to_ldm_state_dict",
    "save_single_file",
]

FAMILIES = ("sd1", "sd2", "sdxl")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_OPEN_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."

# Sub-module renames inside one UNet resnet (diffusers -> LDM ResBlock).
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# Inside one VAE resnet only the shortcut is named differently.
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
# VAE mid-block attention (diffusers Attention -> LDM AttnBlock).
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


# --------------------------------------------------------------------------
# generic helpers


def _rename_inner(rest: str, renames: Mapping[str, str]) -> str:
    """Rename the leading sub-module path of ``rest`` (e.g. ``norm1.weight``)."""
    for old, new in renames.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def _apply_prefix_map(
    state_dict: Mapping[str, torch.Tensor],
    prefix_map: Mapping[str, tuple[str, Mapping[str, str]]],
    what: str,
) -> dict[str, torch.Tensor]:
    """Map every key of ``state_dict`` through the longest matching prefix.

    ``prefix_map`` maps a diffusers module path (``down_blocks.0.resnets.1``)
    to ``(ldm_module_path, inner_renames)``.  Keys with no matching prefix
    raise ``KeyError`` so that an unsupported module never goes missing.
    """
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in prefix_map:
                new_head, renames = prefix_map[head]
                rest = _rename_inner(".".join(parts[cut:]), renames)
                out[f"{new_head}.{rest}"] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f"{what}: no LDM name for {len(unmapped)} key(s), e.g. {unmapped[:5]}")
    return out


def _has_params(module: torch.nn.Module | None) -> bool:
    return module is not None and any(True for _ in module.parameters())


# --------------------------------------------------------------------------
# UNet


def unet_to_ldm(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``UNet2DConditionModel`` state dict in LDM names (without ``model.diffusion_model.``)."""
    none: dict[str, str] = {}
    pm: dict[str, tuple[str, Mapping[str, str]]] = {
        "time_embedding.linear_1": ("time_embed.0", none),
        "time_embedding.linear_2": ("time_embed.2", none),
        "conv_in": ("input_blocks.0.0", none),
        "conv_norm_out": ("out.0", none),
        "conv_out": ("out.2", none),
    }
    # SDXL "text_time" additional embedding, or a projection/timestep class
    # embedding (unCLIP, upscaler): both are LDM's label_emb.0 = Sequential(Linear, SiLU, Linear).
    for name in ("add_embedding", "class_embedding"):
        mod = getattr(unet, name, None)
        if not _has_params(mod):
            continue
        if isinstance(mod, torch.nn.Embedding):  # num_class_embeds: label_emb is an nn.Embedding
            pm[name] = ("label_emb", none)
        else:
            pm[f"{name}.linear_1"] = ("label_emb.0.0", none)
            pm[f"{name}.linear_2"] = ("label_emb.0.2", none)

    idx = 1  # input_blocks.0 is conv_in
    for i, block in enumerate(unet.down_blocks):
        attentions = getattr(block, "attentions", None)
        for j in range(len(block.resnets)):
            pm[f"down_blocks.{i}.resnets.{j}"] = (f"input_blocks.{idx}.0", _UNET_RESNET)
            if attentions is not None and j < len(attentions):
                pm[f"down_blocks.{i}.attentions.{j}"] = (f"input_blocks.{idx}.1", none)
            idx += 1
        if getattr(block, "downsamplers", None):
            pm[f"down_blocks.{i}.downsamplers.0.conv"] = (f"input_blocks.{idx}.0.op", none)
            idx += 1

    mid = getattr(unet, "mid_block", None)
    if mid is not None:
        # LDM middle_block interleaves ResBlock, SpatialTransformer, ResBlock, ...
        for j in range(len(mid.resnets)):
            pm[f"mid_block.resnets.{j}"] = (f"middle_block.{2 * j}", _UNET_RESNET)
        for j in range(len(getattr(mid, "attentions", None) or [])):
            pm[f"mid_block.attentions.{j}"] = (f"middle_block.{2 * j + 1}", none)

    idx = 0
    for i, block in enumerate(unet.up_blocks):
        attentions = getattr(block, "attentions", None)
        n = len(block.resnets)
        for j in range(n):
            pm[f"up_blocks.{i}.resnets.{j}"] = (f"output_blocks.{idx}.0", _UNET_RESNET)
            has_attn = attentions is not None and j < len(attentions)
            if has_attn:
                pm[f"up_blocks.{i}.attentions.{j}"] = (f"output_blocks.{idx}.1", none)
            if j == n - 1 and getattr(block, "upsamplers", None):
                slot = 2 if has_attn else 1
                pm[f"up_blocks.{i}.upsamplers.0.conv"] = (f"output_blocks.{idx}.{slot}.conv", none)
            idx += 1

    return _apply_prefix_map(unet.state_dict(), pm, "UNet")


# --------------------------------------------------------------------------
# VAE


def vae_to_ldm(vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``AutoencoderKL`` state dict in LDM names (without ``first_stage_model.``)."""
    none: dict[str, str] = {}
    pm: dict[str, tuple[str, Mapping[str, str]]] = {}
    for side in ("encoder", "decoder"):
        pm[f"{side}.conv_in"] = (f"{side}.conv_in", none)
        pm[f"{side}.conv_out"] = (f"{side}.conv_out", none)
        pm[f"{side}.conv_norm_out"] = (f"{side}.norm_out", none)
        mid = getattr(vae, side).mid_block
        if mid is not None:
            for j in range(len(mid.resnets)):
                pm[f"{side}.mid_block.resnets.{j}"] = (f"{side}.mid.block_{j + 1}", _VAE_RESNET)
            for j in range(len([a for a in mid.attentions if a is not None])):
                pm[f"{side}.mid_block.attentions.{j}"] = (f"{side}.mid.attn_{j + 1}", _VAE_ATTENTION)
    for name in ("quant_conv", "post_quant_conv"):
        pm[name] = (name, none)

    for i, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            pm[f"encoder.down_blocks.{i}.resnets.{j}"] = (f"encoder.down.{i}.block.{j}", _VAE_RESNET)
        if getattr(block, "downsamplers", None):
            pm[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = (f"encoder.down.{i}.downsample.conv", none)

    n_up = len(vae.decoder.up_blocks)
    for i, block in enumerate(vae.decoder.up_blocks):
        level = n_up - 1 - i  # LDM numbers decoder levels from the lowest resolution up
        for j in range(len(block.resnets)):
            pm[f"decoder.up_blocks.{i}.resnets.{j}"] = (f"decoder.up.{level}.block.{j}", _VAE_RESNET)
        if getattr(block, "upsamplers", None):
            pm[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = (f"decoder.up.{level}.upsample.conv", none)

    out = _apply_prefix_map(vae.state_dict(), pm, "VAE")
    for key, value in out.items():
        # AttnBlock's q/k/v/proj_out are 1x1 convs in LDM: [C, C] -> [C, C, 1, 1].
        if ".mid.attn_" in key and key.endswith(".weight") and value.ndim == 2:
            out[key] = value.reshape(*value.shape, 1, 1)
    return out


# --------------------------------------------------------------------------
# text encoders


def _clip_hf_state_dict(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Text encoder state dict with the ``text_model.`` prefix on the transformer keys.

    transformers >= 5 flattened ``CLIPTextModel`` (keys ``embeddings.*``,
    ``encoder.*``, ``final_layer_norm.*``) while ``CLIPTextModelWithProjection``
    still nests them under ``text_model.``; both (and the 4.x layout) are
    accepted.  ``text_projection.weight`` stays at the top level.
    """
    out = {}
    for key, value in text_encoder.state_dict().items():
        if key.startswith("text_model.") or key.startswith("text_projection."):
            out[key] = value
        else:
            out["text_model." + key] = value
    return out


def clip_to_ldm(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """HF CLIP text encoder in the SD1 / SDXL-embedder-0 naming (``text_model.*``)."""
    return _clip_hf_state_dict(text_encoder)


def clip_to_open_clip(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """HF CLIP text encoder in OpenCLIP names (without the ``...model.`` prefix)."""
    sd = _clip_hf_state_dict(text_encoder)
    out: dict[str, torch.Tensor] = {}
    top = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    layer_renames = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    layer_prefix = "text_model.encoder.layers."
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unmapped = []
    for key, value in sd.items():
        if key in top:
            out[top[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.t()  # Linear weight [P, D] -> OpenCLIP [D, P]
        elif key.startswith(layer_prefix):
            num, rest = key[len(layer_prefix):].split(".", 1)
            n = int(num)
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                _, proj, kind = rest.split(".")
                qkv.setdefault((n, kind), {})[proj[0]] = value
            else:
                out[f"transformer.resblocks.{n}.{_rename_inner(rest, layer_renames)}"] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f"text encoder: no OpenCLIP name for {unmapped[:5]}")
    for (n, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise KeyError(f"text encoder layer {n}: incomplete q/k/v {kind}")
        out[f"transformer.resblocks.{n}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return out


# --------------------------------------------------------------------------
# whole checkpoint


def _add(dst: dict[str, torch.Tensor], prefix: str, src: Mapping[str, torch.Tensor]) -> None:
    for key, value in src.items():
        full = prefix + key
        if full in dst:
            raise KeyError(f"duplicate LDM key {full}")
        dst[full] = value


def to_ldm_state_dict(
    unet: torch.nn.Module,
    vae: torch.nn.Module | None,
    text_encoder: torch.nn.Module | None,
    text_encoder_2: torch.nn.Module | None = None,
    family: str = "sd1",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = "cpu",
) -> dict[str, torch.Tensor]:
    """One flat LDM / A1111 single-file state dict for a diffusers model.

    ``family``: ``"sd1"`` (also SD1 inpainting: same layout, 9 UNet input
    channels), ``"sd2"`` (OpenCLIP text encoder) or ``"sdxl"`` (CLIP-L +
    OpenCLIP bigG; with ``text_encoder=None`` the refiner layout, bigG as
    ``conditioner.embedders.0.model``).  ``vae`` / ``text_encoder`` may be
    ``None`` to leave that component out.

    Floating tensors are cast to ``dtype`` when given; everything is moved to
    ``device`` (``None`` keeps it where it is) and made contiguous.  Tensors
    that need no copy still share memory with the modules: clone them if the
    modules keep training while the dict is in use.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    sd: dict[str, torch.Tensor] = {}
    _add(sd, UNET_PREFIX, unet_to_ldm(unet))
    if vae is not None:
        _add(sd, VAE_PREFIX, vae_to_ldm(vae))

    if family == "sd1":
        if text_encoder_2 is not None:
            raise ValueError("sd1 has a single text encoder")
        if text_encoder is not None:
            _add(sd, SD1_CLIP_PREFIX, clip_to_ldm(text_encoder))
    elif family == "sd2":
        if text_encoder_2 is not None:
            raise ValueError("sd2 has a single text encoder")
        if text_encoder is not None:
            _add(sd, SD2_OPEN_CLIP_PREFIX, clip_to_open_clip(text_encoder))
    else:  # sdxl
        if text_encoder is not None:
            _add(sd, SDXL_CLIP_PREFIX, clip_to_ldm(text_encoder))
            if text_encoder_2 is not None:
                _add(sd, SDXL_OPEN_CLIP_PREFIX, clip_to_open_clip(text_encoder_2))
        elif text_encoder_2 is not None:
            _add(sd, SDXL_REFINER_OPEN_CLIP_PREFIX, clip_to_open_clip(text_encoder_2))

    out = {}
    for key, value in sd.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype=dtype)
        if device is not None:
            value = value.to(device=device)
        out[key] = value.contiguous()
    return out


def save_single_file(
    path: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``state_dict`` as ``.safetensors`` atomically (temp file + ``os.replace``).

    Metadata values must be strings (safetensors' rule).  Tensors that share
    storage (tied weights) are cloned, as safetensors refuses shared memory.
    """
    from safetensors.torch import save_file

    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors metadata keys and values must be str: {bad}")
        metadata = dict(metadata)

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[torch.device, int]] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{key}: not a tensor ({type(value).__name__})")
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        value = value.contiguous()
        ptr = (value.device, value.untyped_storage().data_ptr())
        if value.numel() and ptr in seen:
            value = value.clone()
        elif value.numel():
            seen.add(ptr)
        tensors[key] = value

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped model should be readable
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
