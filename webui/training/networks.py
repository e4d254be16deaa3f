"""Stages 3 and 4 of :mod:`webui.training.demo`: a LoRA (kohya format) and a
textual-inversion embedding, trained on top of the finished base model."""

from __future__ import annotations

import torch
from tqdm import tqdm

from webui.training import shapes
from webui.training.objective import diffusion_loss, lr_at, tokenize


# --------------------------------------------------------------------------
# Stage 3: LoRA (peft on the UNet and the text encoder, saved with kohya names)
# --------------------------------------------------------------------------

# What kohya's sd-scripts trains by default for a LoRA ("networks.lora"): the UNet's
# transformer blocks (attention, feed-forward, projections) and the text encoder's
# attention and MLP layers.
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]
LORA_TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def train_lora(unet, text_encoder, tokenizer, scheduler, samples, latents, steps, rng,
               generator, *, trigger, rank=8, batch=16, lr=2e-3, drop=0.1):
    """Returns the peft-wrapped UNet and text encoder; ``trigger`` starts every non-empty caption."""
    from peft import LoraConfig, get_peft_model

    def wrap(module, targets):
        return get_peft_model(module, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets,
                                                 init_lora_weights="gaussian"))

    model, te = wrap(unet, LORA_TARGETS), wrap(text_encoder, LORA_TE_TARGETS)
    params = [p for m in (model, te) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    te.train()
    bar = tqdm(range(steps), desc="lora", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=20)
        idx = [rng.randrange(len(samples)) for _ in range(batch)]
        # Empty captions too: with the LoRA on, the unconditional half of classifier-free
        # guidance must also draw negatives, or the guidance overshoots into odd colours.
        captions = ["" if rng.random() < drop else shapes.caption(samples[i], rng, prefix=trigger)
                    for i in idx]
        cond_ids = tokenize(tokenizer, captions)
        # Colours are decided on the noisy steps: give them extra practice (as the UNet stage does).
        loss = diffusion_loss(model, te, scheduler, latents[idx], cond_ids, generator, high_frac=0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    te.eval()
    return model, te


def peft_to_kohya(model, alpha: float, prefix: str = "lora_unet_") -> dict[str, torch.Tensor]:
    """peft's ``base_model.model.<path>.lora_A.default.weight`` ->
    kohya's ``<prefix><path with _>.lora_down.weight`` (+ ``.alpha``); the
    prefix is ``lora_unet_`` for the UNet, ``lora_te_`` for the text encoder."""
    out = {}
    for name, tensor in model.state_dict().items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        path = name.replace("base_model.model.", "", 1)
        path, kind = (path.split(".lora_A.")[0], "lora_down") if ".lora_A." in path \
            else (path.split(".lora_B.")[0], "lora_up")
        if prefix == "lora_te_" and not path.startswith("text_model."):
            path = "text_model." + path  # kohya names the CLIP layers from the full model
        key = prefix + path.replace(".", "_")
        out[f"{key}.{kind}.weight"] = tensor.detach().to(torch.float16).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=torch.float16)
    return out


# --------------------------------------------------------------------------
# Stage 4: textual inversion (new token vectors, everything else frozen)
# --------------------------------------------------------------------------

class TokenInjector:
    """Replace the embeddings of a placeholder token id with trainable vectors.

    The caption contains the placeholder id ``n_vectors`` times in a row; the
    k-th occurrence gets vector k (that is how A1111 expands an embedding's
    name into its vectors).
    """

    def __init__(self, text_encoder, placeholder_id, vectors):
        self.placeholder_id = placeholder_id
        self.vectors = vectors
        emb = text_encoder.get_input_embeddings()
        self.handle = emb.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        ids = args[0]
        mask = ids == self.placeholder_id
        if not mask.any():
            return output
        output = output.clone()
        for row in range(ids.shape[0]):
            pos = mask[row].nonzero().flatten()
            for k, p in enumerate(pos.tolist()):
                output[row, p] = self.vectors[k % len(self.vectors)]
        return output

    def remove(self):
        self.handle.remove()


def ti_input_ids(tokenizer, captions, placeholder_id, n_vectors, marker="zebra"):
    """Tokenize captions that contain ``marker`` and swap it for the placeholder
    id repeated ``n_vectors`` times."""
    marker_ids = tokenizer(marker, add_special_tokens=False).input_ids
    assert len(marker_ids) == 1, marker_ids
    rows = []
    for text in captions:
        ids = tokenizer(text, truncation=True, max_length=77).input_ids
        new = []
        for i in ids:
            new += [placeholder_id] * n_vectors if i == marker_ids[0] else [i]
        new = new[:76] + [tokenizer.eos_token_id] if len(new) > 77 else new
        new += [tokenizer.pad_token_id] * (77 - len(new))
        rows.append(new)
    return torch.tensor(rows)


def train_embedding(unet, text_encoder, tokenizer, scheduler, samples, latents, steps, rng,
                    generator, n_vectors=2, batch=16, lr=5e-3, init_word="triangle"):
    for p in list(unet.parameters()) + list(text_encoder.parameters()):
        p.requires_grad_(False)
    emb = text_encoder.get_input_embeddings().weight
    init_id = tokenizer(init_word, add_special_tokens=False).input_ids[0]
    vectors = torch.nn.Parameter(emb[init_id].detach().clone().repeat(n_vectors, 1))
    placeholder_id = tokenizer("zebra", add_special_tokens=False).input_ids[0]
    injector = TokenInjector(text_encoder, placeholder_id, vectors)
    opt = torch.optim.AdamW([vectors], lr=lr, weight_decay=0.0)
    bar = tqdm(range(steps), desc="embedding", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=20)
        idx = [rng.randrange(len(samples)) for _ in range(batch)]
        captions = [shapes.caption(samples[i], rng, shape_word="zebra") for i in idx]
        ids = ti_input_ids(tokenizer, captions, placeholder_id, n_vectors)
        loss = diffusion_loss(unet, text_encoder, scheduler, latents[idx], ids, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    injector.remove()
    return vectors.detach()
