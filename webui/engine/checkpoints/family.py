"""Which Stable Diffusion family a single-file checkpoint is, and its diffusers configs, from keys and shapes.

No library does this for arbitrary sizes: diffusers' `infer_diffusers_model_type` only names the family and then
fetches the full-size config from the hub. We read the architecture off the tensor shapes instead (so small and
custom-sized models load too) and fill in what shapes cannot tell from the shipped config of the family:
  * UNet heads: SD1 uses 8 heads everywhere; SD2 and SDXL use a head size of 64.
  * text encoder heads: head size 64.
A checkpoint may override any config value in its safetensors metadata under `latent_studio.diffusers_config`
(JSON: {"unet": {...}, "vae": {...}, "text_encoder": {...}, "text_encoder_2": {...}, "scheduler": {...}}).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from webui import resources

UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_TE = ("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")
SD2_TE = "cond_stage_model.model."
XL_TE1 = ("conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.0.transformer.")
XL_TE2 = "conditioner.embedders.1.model."

FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


class UnknownModelError(ValueError):
    pass


@dataclass
class ModelSpec:
    family: str  # sd1 | sd2 | sdxl
    inpaint: bool
    prediction_type: str  # epsilon | v_prediction (sd2 may be decided later by a test run)
    configs: dict  # component name -> diffusers config dict (unet, vae, text_encoder[, text_encoder_2], scheduler)
    native_size: tuple[int, int]
    prediction_known: bool = True

    @property
    def label(self) -> str:
        s = FAMILY_LABELS[self.family]
        if self.family == "sd2" and self.prediction_type == "v_prediction":
            s += " (v)"
        return s + (" inpainting" if self.inpaint else "")

    def config_key(self) -> str:
        """Equal keys = same module skeletons (weights can be loaded into the same modules)."""
        return json.dumps({k: v for k, v in self.configs.items() if k != "scheduler"}, sort_keys=True, default=str)


def _first_prefix(keys, prefixes) -> str | None:
    for p in prefixes:
        probe = p + "embeddings.token_embedding.weight"
        if probe in keys:
            return p
    return None


def detect(shapes: dict[str, tuple], metadata: dict | None = None) -> ModelSpec:
    """`shapes` maps every tensor name to its shape (read from the header, no weights needed)."""
    metadata = metadata or {}
    keys = shapes.keys()
    if UNET + "input_blocks.0.0.weight" not in keys:
        if any(k.startswith(("down_blocks.", "conv_in.")) for k in keys):
            raise UnknownModelError("this looks like a lone diffusers UNet/VAE, not a full Stable Diffusion checkpoint")
        if any(k.startswith(("lora_", "lora_unet", "lora_te")) or ".lora_" in k for k in keys):
            raise UnknownModelError("this is a LoRA, not a checkpoint: put it in models/Lora")
        raise UnknownModelError("no Stable Diffusion UNet found (no 'model.diffusion_model.*' keys); unknown model type")

    if XL_TE2 + "ln_final.weight" in keys or (UNET + "label_emb.0.0.weight" in keys and XL_TE2 + "token_embedding.weight" in keys):
        if _first_prefix(keys, XL_TE1) is None:
            raise UnknownModelError("SDXL refiner checkpoints are not supported (only SDXL base layouts)")
        family = "sdxl"
    elif SD2_TE + "ln_final.weight" in keys:
        family = "sd2"
    elif _first_prefix(keys, SD1_TE):
        family = "sd1"
    else:
        raise UnknownModelError("UNet found but no known text encoder (CLIP-L / OpenCLIP); unknown model family")

    base = _base_configs(family)
    unet = {**base["unet"], **_unet_config(shapes, family)}
    vae = {**base["vae"], **_vae_config(shapes)}
    configs = {"unet": unet, "vae": vae, "scheduler": dict(base["scheduler"])}
    if family == "sd1":
        configs["text_encoder"] = {**base["text_encoder"], **_clip_config(shapes, _first_prefix(keys, SD1_TE))}
    elif family == "sd2":
        configs["text_encoder"] = {**base["text_encoder"], **_openclip_config(shapes, SD2_TE)}
    else:
        configs["text_encoder"] = {**base["text_encoder"], **_clip_config(shapes, _first_prefix(keys, XL_TE1))}
        configs["text_encoder_2"] = {**base["text_encoder_2"], **_openclip_config(shapes, XL_TE2)}
        pooled = configs["text_encoder_2"]["projection_dim"]
        adm_in = shapes[UNET + "label_emb.0.0.weight"][1]
        unet["addition_time_embed_dim"] = (adm_in - pooled) // 6
        unet["projection_class_embeddings_input_dim"] = adm_in

    # what the file says about itself wins over guesses
    overrides = metadata.get("latent_studio.diffusers_config")
    if overrides:
        for comp, values in json.loads(overrides).items():
            if comp in configs:
                configs[comp].update(values)
    if "latent_studio.vae_scaling_factor" in metadata:
        vae["scaling_factor"] = float(metadata["latent_studio.vae_scaling_factor"])

    prediction = metadata.get("modelspec.prediction_type") or metadata.get("prediction_type")
    known = prediction in ("epsilon", "v", "v_prediction")
    prediction = "v_prediction" if prediction in ("v", "v_prediction") else "epsilon"
    if family != "sd2":
        known = True  # SD1 and SDXL base are epsilon models
    configs["scheduler"]["prediction_type"] = prediction

    res = metadata.get("modelspec.resolution")
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", res or "")
    if m:
        native = (int(m.group(1)), int(m.group(2)))
    else:
        side = {"sd1": 512, "sd2": 512, "sdxl": 1024}[family]
        native = (side, side)
    unet["sample_size"] = native[1] // 8
    vae["sample_size"] = native[1]
    return ModelSpec(family, unet["in_channels"] == 9, prediction, configs, native, known)


def _base_configs(family: str) -> dict:
    folder = resources.config_dir(family)
    out = {}
    for comp in ("unet", "vae", "text_encoder", "text_encoder_2"):
        f = folder / comp / "config.json"
        if f.exists():
            out[comp] = json.loads(f.read_text())
    out["scheduler"] = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    return out


def _count(shapes, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := rx.match(k))})


def _unet_config(shapes: dict, family: str) -> dict:
    p = UNET
    in_ch, model_ch = shapes[p + "input_blocks.0.0.weight"][1], shapes[p + "input_blocks.0.0.weight"][0]
    levels: list[dict] = [{"res": 0, "attn": False, "depth": 1, "ch": model_ch}]
    i = 1
    while any(k.startswith(f"{p}input_blocks.{i}.") for k in shapes):
        if f"{p}input_blocks.{i}.0.op.weight" in shapes:
            levels.append({"res": 0, "attn": False, "depth": 1, "ch": levels[-1]["ch"]})
        else:
            lvl = levels[-1]
            lvl["res"] += 1
            lvl["ch"] = shapes[f"{p}input_blocks.{i}.0.out_layers.3.weight"][0]
            if f"{p}input_blocks.{i}.1.norm.weight" in shapes:
                lvl["attn"] = True
                lvl["depth"] = _count(shapes, re.escape(f"{p}input_blocks.{i}.1.transformer_blocks.") + r"(\d+)\.")
        i += 1
    block_out = [lvl["ch"] for lvl in levels]
    attn_key = next(k for k in shapes if k.startswith(p) and k.endswith("attn2.to_k.weight"))
    proj_in = next(k for k in shapes if k.startswith(p) and k.endswith(".proj_in.weight"))
    cfg = {
        "in_channels": in_ch,
        "out_channels": shapes[p + "out.2.weight"][0],
        "block_out_channels": block_out,
        "layers_per_block": levels[0]["res"],
        "down_block_types": ["CrossAttnDownBlock2D" if lvl["attn"] else "DownBlock2D" for lvl in levels],
        "up_block_types": ["CrossAttnUpBlock2D" if lvl["attn"] else "UpBlock2D" for lvl in reversed(levels)],
        "cross_attention_dim": shapes[attn_key][1],
        "use_linear_projection": len(shapes[proj_in]) == 2,
        "attention_head_dim": 8 if family == "sd1" else [max(1, c // 64) for c in block_out],
    }
    if family == "sdxl" or any(lvl["depth"] != 1 for lvl in levels):
        cfg["transformer_layers_per_block"] = [lvl["depth"] for lvl in levels]
    for side, key in (("conv_in_kernel", "input_blocks.0.0.weight"), ("conv_out_kernel", "out.2.weight")):
        if shapes[p + key][2] != 3:  # SD uses 3x3; small models may see further
            cfg[side] = shapes[p + key][2]
    if f"{p}middle_block.1.norm.weight" not in shapes:
        cfg["mid_block_type"] = None
    return cfg


def _vae_config(shapes: dict) -> dict:
    p = VAE + "encoder."
    n_levels = _count(shapes, re.escape(p + "down.") + r"(\d+)\.")
    layers = _count(shapes, re.escape(p + "down.0.block.") + r"(\d+)\.")
    block_out = [shapes[f"{p}down.{i}.block.0.conv2.weight"][0] for i in range(n_levels)]
    return {
        "in_channels": shapes[p + "conv_in.weight"][1],
        "out_channels": shapes[VAE + "decoder.conv_out.weight"][0],
        "block_out_channels": block_out,
        "layers_per_block": layers,
        "latent_channels": shapes[VAE + "decoder.conv_in.weight"][1],
        "down_block_types": ["DownEncoderBlock2D"] * n_levels,
        "up_block_types": ["UpDecoderBlock2D"] * n_levels,
    }


def _clip_config(shapes: dict, prefix: str) -> dict:
    vocab, hidden = shapes[prefix + "embeddings.token_embedding.weight"]
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": _count(shapes, re.escape(prefix + "encoder.layers.") + r"(\d+)\."),
        "intermediate_size": shapes[prefix + "encoder.layers.0.mlp.fc1.weight"][0],
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": shapes[prefix + "embeddings.position_embedding.weight"][0],
    }


def _openclip_config(shapes: dict, prefix: str) -> dict:
    vocab, hidden = shapes[prefix + "token_embedding.weight"]
    layers = _count(shapes, re.escape(prefix + "transformer.resblocks.") + r"(\d+)\.")
    cfg = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0],
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": shapes[prefix + "positional_embedding"][0],
    }
    if prefix == SD2_TE and layers == 24:
        cfg["num_hidden_layers"] = 23  # SD2 uses the penultimate layer; diffusers drops the last one
    if prefix + "text_projection" in shapes:
        cfg["projection_dim"] = shapes[prefix + "text_projection"][1]
    return cfg
