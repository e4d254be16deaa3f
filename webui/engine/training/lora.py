"""LoRA training parts: peft adapters on the training copies, and the kohya file (names, `.alpha`, `ss_*`
metadata) that A1111, ComfyUI, kohya and civitai read. The built-in model's demo (webui/training) uses them too."""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter

import torch

# What kohya's sd-scripts trains by default for a LoRA ("networks.lora"): the UNet's transformer blocks
# (attention, feed-forward, projections) and the text encoder's attention and MLP layers.
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]
LORA_TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
TE_PREFIXES = {1: ["lora_te_"], 2: ["lora_te1_", "lora_te2_"]}  # kohya: SD1/SD2, SDXL


def add_lora(module: torch.nn.Module, targets: list[str], rank: int, alpha: float, init="gaussian"):
    """`module` wrapped by peft with a LoRA adapter ("default") on the `targets` layers; only those train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=init)
    return get_peft_model(module, config)


def kohya_key(peft_name: str, prefix: str) -> tuple[str, str] | None:
    """peft's ``base_model.model.<path>.lora_A.default.weight`` -> (kohya module key, "lora_down"|"lora_up")."""
    if ".lora_A." not in peft_name and ".lora_B." not in peft_name:
        return None
    path = peft_name.replace("base_model.model.", "", 1)
    path, kind = (path.split(".lora_A.")[0], "lora_down") if ".lora_A." in path \
        else (path.split(".lora_B.")[0], "lora_up")
    if prefix.startswith("lora_te") and not path.startswith("text_model."):
        path = "text_model." + path  # kohya names the CLIP layers from the full model
    return prefix + path.replace(".", "_"), kind


def peft_to_kohya(model, alpha: float, prefix: str = "lora_unet_", dtype=torch.float16) -> dict[str, torch.Tensor]:
    """The adapter of a peft model as kohya tensors: ``<prefix><path with _>.lora_down/lora_up.weight`` and
    ``.alpha``; the prefix is ``lora_unet_`` for the UNet, ``lora_te_`` (SDXL: ``lora_te1_``/``lora_te2_``) for
    the text encoder."""
    out = {}
    for name, tensor in model.state_dict().items():
        found = kohya_key(name, prefix)
        if found is None:
            continue
        key, kind = found
        out[f"{key}.{kind}.weight"] = tensor.detach().to("cpu", dtype).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return out


def load_kohya_into(model, tensors: dict[str, torch.Tensor], prefix: str) -> int:
    """Copy a kohya file's tensors back into the peft model's adapter (resuming a run); returns how many."""
    own = model.state_dict()
    n = 0
    with torch.no_grad():
        for name in own:
            found = kohya_key(name, prefix)
            if found is None:
                continue
            src = tensors.get(f"{found[0]}.{found[1]}.weight")
            if src is None or src.shape != own[name].shape:
                raise ValueError(f"the file has no matching {found[0]} ({found[1]})")
            own[name].copy_(src.to(own[name].dtype))
            n += 1
    return n


def legacy_model_hash(path) -> str:
    """kohya's `ss_sd_model_hash` (A1111's old short hash): SHA-256 of 64 KiB at offset 1 MiB, 8 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(0x100000)
        h.update(f.read(0x10000))
    return h.hexdigest()[:8]


def precomputed_hash(tensors: dict[str, torch.Tensor]) -> str:
    """kohya's `sshs_model_hash`: the additional-networks hash of the file to be written (SHA-256 of what follows
    its header, which the metadata does not change), so readers need not hash the file."""
    from safetensors.torch import save

    data = save(tensors)
    n = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + n:]).hexdigest()


BASE_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
ARCHITECTURE = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-512/lora",
                "sdxl": "stable-diffusion-xl-v1-base/lora"}


def kohya_metadata(*, name, family, v_prediction, checkpoint_name, checkpoint_sha256, checkpoint_legacy_hash,
                   trigger, captions, sources, folder, resolution, buckets, rank, alpha, learning_rate, text_lr,
                   train_text_encoder, steps, max_steps, batch_size, seed, optimizer, mixed_precision,
                   gradient_checkpointing, noise_offset, min_snr_gamma, flip, started, loss_weighting="min-snr", comment="") -> dict[str, str]:
    """kohya's `ss_*` training metadata (what A1111's LoRA cards, civitai and kohya's tools read) plus the
    modelspec keys; trigger words live in `ss_tag_frequency` (A1111 and civitai read them from there),
    `modelspec.trigger_phrase` and the training comment. Values are strings (safetensors metadata)."""
    tags: Counter = Counter()
    for caption in captions:
        for tag in (t.strip() for t in caption.split(",")):
            if tag:
                tags[tag] += 1
    width, height = resolution
    meta = {
        "ss_output_name": name, "ss_training_started_at": str(started), "ss_training_finished_at": str(time.time()),
        "ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(float(alpha)),
        "ss_network_args": json.dumps({}), "ss_base_model_version": BASE_VERSION.get(family, family),
        "ss_v2": str(family == "sd2"), "ss_sd_model_name": checkpoint_name,
        "ss_new_sd_model_hash": checkpoint_sha256 or "", "ss_sd_model_hash": checkpoint_legacy_hash or "",
        "ss_num_train_images": str(len(captions)), "ss_num_reg_images": "0",
        "ss_dataset_dirs": json.dumps({folder: {"n_repeats": 1, "img_count": len(captions)}}),
        "ss_tag_frequency": json.dumps({folder: dict(tags)}),
        "ss_resolution": f"({width}, {height})", "ss_enable_bucket": str(buckets),
        "ss_max_train_steps": str(max_steps), "ss_steps": str(steps), "ss_epoch": str(steps * batch_size // max(
            1, len(captions))), "ss_learning_rate": str(learning_rate), "ss_unet_lr": str(learning_rate),
        "ss_text_encoder_lr": str(text_lr if train_text_encoder else 0.0), "ss_lr_scheduler": "cosine_with_warmup",
        "ss_batch_size_per_device": str(batch_size), "ss_total_batch_size": str(batch_size), "ss_seed": str(seed),
        "ss_optimizer": optimizer, "ss_mixed_precision": mixed_precision, "ss_cache_latents": "True",
        "ss_gradient_checkpointing": str(gradient_checkpointing), "ss_noise_offset": str(noise_offset),
        "ss_min_snr_gamma": str(min_snr_gamma) if min_snr_gamma else "None", "ss_flip_aug": str(flip),
        "ss_loss_weighting": loss_weighting, "ss_clip_skip": "None", "ss_training_comment": comment or (f"Trigger word: {trigger}" if trigger else ""),
        "ss_source_files": json.dumps(sources[:100]),
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": ARCHITECTURE.get(family, family),
        "modelspec.implementation": "diffusers", "modelspec.title": name,
        "modelspec.resolution": f"{width}x{height}", "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.prediction_type": "v" if v_prediction else "epsilon",
    }
    if trigger:
        meta["modelspec.trigger_phrase"] = trigger
    return meta
