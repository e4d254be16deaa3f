"""Textual-inversion parts: trainable vectors put in place of a placeholder token (a forward hook on the training
copy's token-embedding layer), their start from words (A1111's init text), and A1111's embedding files."""
from __future__ import annotations

from pathlib import Path

import torch

from webui.engine.training.saving import atomic_write

PLACEHOLDER = "<ls-placeholder>"


class TokenInjector:
    """Replace the embeddings of a placeholder token id with trainable vectors.

    The caption holds the placeholder id ``len(vectors)`` times in a row; the k-th occurrence gets vector k (that is
    how A1111 expands an embedding's name into its vectors)."""

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
                output[row, p] = self.vectors[k % len(self.vectors)].to(output.dtype)
        return output

    def remove(self):
        self.handle.remove()


def add_placeholder(tokenizer, text_encoder) -> int:
    """Add the placeholder token to a (copied) tokenizer and one row to its (copied) encoder; returns its id."""
    tokenizer.add_tokens([PLACEHOLDER])
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer.convert_tokens_to_ids(PLACEHOLDER)


def init_vectors(tokenizer, text_encoder, init_text: str, num_vectors: int) -> torch.Tensor:
    """A1111's start: the token embeddings of `init_text` ('*' when empty), vector i taken from token
    i * tokens // num_vectors; zeros for an init text with no tokens."""
    weight = text_encoder.get_input_embeddings().weight.detach().float().cpu()
    ids = tokenizer(init_text or "*", add_special_tokens=False).input_ids
    vec = torch.zeros((num_vectors, weight.shape[1]))
    if ids:
        embedded = weight[ids]
        for i in range(num_vectors):
            vec[i] = embedded[i * embedded.shape[0] // num_vectors]
    return vec


def embedding_path(folder: Path, name: str, family: str) -> Path:
    """A1111 writes `.pt` (string_to_param); SDXL embeddings are `.safetensors` with clip_l + clip_g."""
    return Path(folder) / f"{name}{'.safetensors' if family == 'sdxl' else '.pt'}"


def save_embedding(path: Path, name: str, vectors: dict[str, torch.Tensor], step: int, checkpoint_hash: str | None,
                   checkpoint_name: str) -> None:
    """A1111's layout: {string_to_token, string_to_param: {'*': [n, dim]}, name, step, sd_checkpoint,
    sd_checkpoint_name}; SDXL: clip_l / clip_g tensors (metadata in the header). Written to a temp file, renamed."""
    if "clip_l" in vectors:
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().float().contiguous() for k, v in vectors.items()}
        meta = {"name": name, "step": str(step), "sd_checkpoint": checkpoint_hash or "",
                "sd_checkpoint_name": checkpoint_name}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    else:
        data = {"string_to_token": {"*": 265}, "string_to_param": {"*": vectors[""].detach().cpu().float()},
                "name": name, "step": step, "sd_checkpoint": checkpoint_hash, "sd_checkpoint_name": checkpoint_name}
        atomic_write(path, lambda tmp: torch.save(data, tmp))
