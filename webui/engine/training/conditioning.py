"""Captions -> the UNet's text conditioning, for SD 1.x/2.x (one CLIP encoder) and SDXL (two, with pooled text
embeddings and size ids), as diffusers' pipelines compute it; with gradients when the text encoders train."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

MAX_TOKENS = 77


def token_ids(tokenizer, captions: list[str], repeat: dict[int, int] | None = None) -> torch.Tensor:
    """[n, 77] ids, each id of `repeat` written that many times in a row (a multi-vector embedding's placeholder),
    cut at 77 tokens and padded as the tokenizer pads."""
    repeat = repeat or {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for text in captions:
        ids = tokenizer(text, truncation=False, add_special_tokens=True).input_ids
        out = []
        for i in ids:
            out += [i] * repeat.get(i, 1)
        if len(out) > MAX_TOKENS:
            out = out[:MAX_TOKENS - 1] + [tokenizer.eos_token_id]
        rows.append(out + [pad] * (MAX_TOKENS - len(out)))
    return torch.tensor(rows)


@dataclass
class Conditioner:
    family: str  # "sd1" | "sd2" | "sdxl"
    tokenizers: list
    encoders: list  # the training copies
    repeat: list[dict[int, int]] = field(default_factory=list)  # per tokenizer: placeholder id -> vectors

    def encode(self, captions: list[str], sizes: list[tuple[int, int]]) -> tuple[torch.Tensor, dict | None]:
        """(encoder_hidden_states, added_cond_kwargs or None) for these captions; `sizes` are the (width, height)
        of the images, which SDXL is told."""
        device = next(self.encoders[0].parameters()).device
        repeats = self.repeat or [{}] * len(self.tokenizers)
        ids = [token_ids(tok, captions, rep).to(device) for tok, rep in zip(self.tokenizers, repeats)]
        if self.family != "sdxl":
            return self.encoders[0](ids[0]).last_hidden_state, None
        hidden, pooled = [], None
        for enc, i in zip(self.encoders, ids):
            out = enc(i, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the last encoder's projected, pooled embedding
        time_ids = torch.tensor([[h, w, 0, 0, h, w] for w, h in sizes], device=device, dtype=hidden[0].dtype)
        return torch.cat(hidden, dim=-1), {"text_embeds": pooled, "time_ids": time_ids}
