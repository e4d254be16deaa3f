"""Stages 3 and 4 of :mod:`webui.training.demo`: a LoRA (kohya format) and a
textual-inversion embedding, trained on top of the finished base model (with the engine's training parts, which
the user-facing training in webui.engine.training uses too)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from webui.engine.training.embedding import TokenInjector
from webui.engine.training.lora import (
    LORA_TARGETS,
    LORA_TE_TARGETS,
    add_lora,
    peft_to_kohya,
)
from webui.training import shapes
from webui.training.objective import diffusion_loss, lr_at, tokenize

__all__ = ["LORA_TARGETS", "LORA_TE_TARGETS", "TokenInjector", "peft_to_kohya", "ti_input_ids", "train_embedding",
           "train_lora"]


# --------------------------------------------------------------------------
# Stage 3: LoRA (peft on the UNet and the text encoder, saved with kohya names)
# --------------------------------------------------------------------------

def train_lora(unet, text_encoder, tokenizer, scheduler, samples, latents, steps, rng,
               generator, *, trigger, rank=8, batch=16, lr=2e-3, drop=0.1):
    """Returns the peft-wrapped UNet and text encoder; ``trigger`` starts every non-empty caption."""
    model, te = add_lora(unet, LORA_TARGETS, rank, rank), add_lora(text_encoder, LORA_TE_TARGETS, rank, rank)
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


# --------------------------------------------------------------------------
# Stage 4: textual inversion (new token vectors, everything else frozen)
# --------------------------------------------------------------------------

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
