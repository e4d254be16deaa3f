"""Text conditioning the A1111 way on top of diffusers' CLIP text encoders.

``PromptEncoder`` turns prompts into ``prompt_embeds`` (and SDXL's pooled
embedding) following A1111 v1.10's ``sd_hijack_clip``:

* The prompt is split into emphasis runs (``attention.parse_prompt_attention``),
  each run tokenized without special tokens, and the tokens laid out in chunks
  of 75: ``[BOS] + 75 tokens + [EOS]`` = 77. A chunk is filled up with EOS and
  every position after the first EOS is then set to the tokenizer's pad token
  (EOS for SD1 and SDXL's first tokenizer, ``!`` = id 0 for SD2 and SDXL's
  second one) - which is exactly what ``tokenizer(..., padding="max_length")``
  gives, so a short prompt gets the same ids as in diffusers' ``encode_prompt``.
* Comma backtrack (A1111 "Prompt word wrap length limit", default 20): when a
  chunk is full, the next token is not a comma and the last comma is at most 20
  tokens back, the tokens after that comma move to the next chunk.
* ``BREAK`` ends the current chunk (the rest is padding).
* A multi-vector textual-inversion token (diffusers' ``load_textual_inversion``
  adds ``name``, ``name_1``, ``name_2`` ... to the tokenizer) is expanded to all
  its vectors and never split across two chunks, like A1111's embeddings.
  Everything goes through the tokenizer, so tokens added after this object was
  built are seen.
* Each chunk is encoded on its own and the chunks are concatenated: 77 * k
  tokens. Texts of one ``encode`` call are padded to the same number of chunks
  with empty chunks (``[BOS, EOS, pad ...]``).
* "Original" emphasis per chunk: ``m = z.mean(); z *= weight per token
  (BOS/EOS/padding 1.0); z *= m / z.mean()``. As in A1111 the means are taken
  over the whole batch of the chunk, i.e. over all texts of one ``encode`` call
  (A1111 encodes the texts of one prompt's edit schedule as one batch); for
  texts that should not influence each other, call ``encode`` once per text.
  Other A1111 emphasis modes: ``"No norm"`` (no mean restore), ``"Ignore"``
  (weights parsed, not applied), ``"None"`` (brackets are literal text and
  ``BREAK`` is a plain word).

Layers (A1111 semantics, checked against diffusers' ``encode_prompt``):

* SD1: clip skip ``N`` = ``hidden_states[-N]`` followed by the final layer norm;
  ``N = 1`` is ``last_hidden_state``. (diffusers' own ``clip_skip`` counts one
  less: A1111 "Clip skip: 2" = diffusers ``clip_skip=1``.)
* SD2: diffusers' SD2 text encoder already ends at OpenCLIP's penultimate layer,
  so ``last_hidden_state`` is what A1111 uses; A1111 ignores clip skip for SD2.
* SDXL: ``hidden_states[-2]`` of both encoders *without* the final layer norm,
  concatenated on the feature axis; pooled = ``text_encoder_2``'s projected
  ``text_embeds`` of the first chunk. A1111 ignores clip skip for SDXL (its
  "Clip skip SDXL" option is off by default).
* ``a1111_clip_skip=False`` applies clip skip to SD2 (like SD1) and SDXL
  (``hidden_states[-(N + 1)]`` of both, no final norm - diffusers' SDXL rule with
  ``clip_skip = N - 1``) instead of ignoring it.
* ``encode(..., negative=True)`` on SDXL with every text empty gives zeros
  (embeds and pooled): A1111's ``force_zero_negative_prompt`` and diffusers'
  ``force_zeros_for_empty_prompt`` default.

The text encoders run under ``torch.no_grad()`` on their own device and dtype;
results are in the dtype of the (last) text encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from webui.engine.requests import RequestError
from webui.engine.prompts.attention import parse_prompt_attention

__all__ = ["Conditioning", "PromptEncoder", "PromptChunk", "EMPHASIS_MODES", "FAMILIES"]

FAMILIES = ("sd1", "sd2", "sdxl")
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")
CHUNK_LENGTH = 75


@dataclass
class Conditioning:
    """Encoded prompts: ``embeds`` ``[B, 77*k, D]``; ``pooled`` ``[B, P]`` for SDXL, else ``None``."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_LENGTH + 2)


@dataclass
class PromptChunk:
    """77 token ids and their weights (``[BOS] + 75 + [EOS]``, padding already applied)."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)


class _Branch:
    """One tokenizer + text encoder pair and its A1111 chunking."""

    def __init__(self, tokenizer, text_encoder, backtrack: int) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.backtrack = backtrack
        self.id_start = tokenizer.bos_token_id
        self.id_end = tokenizer.eos_token_id
        pad = getattr(tokenizer, "pad_token_id", None)
        self.id_pad = self.id_end if pad is None else pad
        if self.id_start is None or self.id_end is None:
            raise ValueError("the tokenizer needs BOS and EOS tokens")
        self.comma_token = tokenizer.convert_tokens_to_ids(",</w>")
        if self.comma_token == getattr(tokenizer, "unk_token_id", None):
            self.comma_token = None

    # -- tokens ---------------------------------------------------------------------------

    def _multi_vector_groups(self) -> dict[int, list[int]]:
        """Added token id -> ids of all its vectors, for multi-vector TI tokens."""
        added = getattr(self.tokenizer, "added_tokens_encoder", None) or {}
        groups: dict[int, list[int]] = {}
        for name, ident in added.items():
            if f"{name}_1" in added:
                ids = [ident]
                i = 1
                while f"{name}_{i}" in added:
                    ids.append(added[f"{name}_{i}"])
                    i += 1
                groups[ident] = ids
        return groups

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def _finish(self, tokens: list[int], multipliers: list[float]) -> PromptChunk:
        to_add = CHUNK_LENGTH - len(tokens)
        tokens = [self.id_start] + tokens + [self.id_end] * max(to_add, 0) + [self.id_end]
        multipliers = [1.0] + multipliers + [1.0] * max(to_add, 0) + [1.0]
        if self.id_pad != self.id_end:
            first_end = tokens.index(self.id_end)
            tokens[first_end + 1 :] = [self.id_pad] * (len(tokens) - first_end - 1)
        return PromptChunk(tokens, multipliers)

    def empty_chunk(self) -> PromptChunk:
        return self._finish([], [])

    def tokenize_line(self, line: str, emphasis: str) -> tuple[list[PromptChunk], int]:
        """A1111's ``tokenize_line``: the chunks of ``line`` and its token count."""
        parsed = parse_prompt_attention(line) if emphasis != "None" else [(line, 1.0)]
        tokenized = self._tokenize([text for text, _ in parsed])
        groups = self._multi_vector_groups()

        chunks: list[PromptChunk] = []
        tokens: list[int] = []
        mults: list[float] = []
        token_count = 0
        last_comma = -1

        def next_chunk(is_last: bool = False) -> None:
            nonlocal tokens, mults, token_count, last_comma
            token_count += len(tokens) if is_last else CHUNK_LENGTH
            chunks.append(self._finish(tokens, mults))
            tokens, mults = [], []
            last_comma = -1

        for ids, (text, weight) in zip(tokenized, parsed):
            if text == "BREAK" and weight == -1:
                next_chunk()
                continue
            for token in ids:
                if token == self.comma_token:
                    last_comma = len(tokens)
                elif (
                    self.backtrack
                    and len(tokens) == CHUNK_LENGTH
                    and last_comma != -1
                    and len(tokens) - last_comma <= self.backtrack
                ):
                    cut = last_comma + 1
                    moved_tokens, moved_mults = tokens[cut:], mults[cut:]
                    tokens, mults = tokens[:cut], mults[:cut]
                    next_chunk()
                    tokens, mults = moved_tokens, moved_mults
                if len(tokens) == CHUNK_LENGTH:
                    next_chunk()
                vectors = groups.get(token)
                if vectors is None:
                    tokens.append(token)
                    mults.append(weight)
                    continue
                if len(tokens) + len(vectors) > CHUNK_LENGTH:
                    next_chunk()
                tokens.extend(vectors)
                mults.extend([weight] * len(vectors))

        if tokens or not chunks:
            next_chunk(is_last=True)
        return chunks, token_count

    # -- encoder --------------------------------------------------------------------------

    def device_dtype(self) -> tuple[torch.device, torch.dtype]:
        param = next(self.text_encoder.parameters())
        return param.device, param.dtype

    def hidden(self, ids: torch.Tensor, layer: tuple[int, bool]):
        """(z, output) for ``ids``: ``layer`` = (index into hidden_states or 0 for last, final norm)."""
        index, final_norm = layer
        output = self.text_encoder(input_ids=ids, output_hidden_states=index != 0)
        if index == 0:
            return output.last_hidden_state, output
        if -index > len(output.hidden_states):  # a clip skip past the text encoder's first layer
            shift = 0 if final_norm else 1  # hidden_states index -> A1111's clip skip number
            raise RequestError(f"clip_skip {-index - shift} is more than this model's text encoder allows; use at "
                               f"most {len(output.hidden_states) - shift}")
        z = output.hidden_states[index]
        if final_norm:
            # transformers 5 flattened CLIPTextModel (no .text_model); WithProjection still nests it.
            z = getattr(self.text_encoder, "text_model", self.text_encoder).final_layer_norm(z)
        return z, output


def _apply_emphasis(
    z: torch.Tensor, multipliers: torch.Tensor, emphasis: str, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """A1111 emphasis on one chunk of a batch; ``counts``: how often each row occurs in the batch."""
    if emphasis in ("Ignore", "None") or bool(torch.all(multipliers == 1.0)):
        return z
    weighted = z * multipliers.reshape(multipliers.shape + (1,)).expand(z.shape)
    if emphasis == "No norm":
        return weighted
    if counts is None:
        original_mean, new_mean = z.mean(), weighted.mean()
    else:  # the mean over the batch with its repeated rows, without encoding them twice
        w = counts.to(dtype=z.dtype, device=z.device)
        per_row = z[0].numel()
        original_mean = (z.sum(dim=(1, 2)) * w).sum() / (w.sum() * per_row)
        new_mean = (weighted.sum(dim=(1, 2)) * w).sum() / (w.sum() * per_row)
    return weighted * (original_mean / new_mean)


class PromptEncoder:
    """A1111-style prompt encoding for SD1 / SD2 / SDXL diffusers text encoders.

    ``tokenizers`` / ``text_encoders``: ``[pipe.tokenizer]`` / ``[pipe.text_encoder]``,
    or for SDXL ``[pipe.tokenizer, pipe.tokenizer_2]`` /
    ``[pipe.text_encoder, pipe.text_encoder_2]`` (``text_encoder_2`` a
    ``CLIPTextModelWithProjection``).
    """

    def __init__(
        self,
        tokenizers: Sequence,
        text_encoders: Sequence,
        family: str,
        *,
        emphasis: str = "Original",
        comma_padding_backtrack: int = 20,
        a1111_clip_skip: bool = True,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}")
        expected = 2 if family == "sdxl" else 1
        if len(tokenizers) != expected or len(text_encoders) != expected:
            raise ValueError(f"{family} needs {expected} tokenizer(s) and text encoder(s)")
        if emphasis not in EMPHASIS_MODES:
            raise ValueError(f"unknown emphasis mode {emphasis!r}; expected one of {', '.join(EMPHASIS_MODES)}")
        self.family = family
        self.emphasis = emphasis
        self.a1111_clip_skip = a1111_clip_skip
        self._branches = [
            _Branch(tok, enc, int(comma_padding_backtrack)) for tok, enc in zip(tokenizers, text_encoders)
        ]

    # -- public -----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self._branches[-1].device_dtype()[0]

    @property
    def dtype(self) -> torch.dtype:
        return self._branches[-1].device_dtype()[1]

    def tokenize(self, text: str) -> list[PromptChunk]:
        """The chunks (ids and weights) of ``text`` for the first tokenizer."""
        return self._branches[0].tokenize_line(text, self.emphasis)[0]

    def token_count(self, text: str) -> tuple[int, int]:
        """A1111's token counter for ``text``: ``(count, ceil(max(count, 1) / 75) * 75)``.

        Chunks before the last count as 75 each (so BREAK and comma backtrack add
        their padding), the last one by its real length.
        """
        _, count = self._branches[0].tokenize_line(text, self.emphasis)
        return count, math.ceil(max(count, 1) / CHUNK_LENGTH) * CHUNK_LENGTH

    def chunk_count(self, text: str) -> int:
        """How many 77-token chunks ``text`` encodes to."""
        return max(len(b.tokenize_line(text, self.emphasis)[0]) for b in self._branches)

    def encode(self, texts: Sequence[str], clip_skip: int = 1, *, negative: bool = False) -> Conditioning:
        """Encode ``texts`` (one A1111 batch) to ``[B, 77*k, D]`` (+ pooled ``[B, P]`` for SDXL).

        ``clip_skip`` uses A1111's numbering (1 = last layer). ``negative=True``
        marks negative prompts: for SDXL, an all-empty batch encodes to zeros.
        Repeated texts are encoded once (the emphasis means still count them as
        often as they occur, as A1111's batch would).
        """
        distinct, cond, index = self.encode_distinct(texts, clip_skip, negative=negative)
        if len(distinct) == len(index):
            return cond
        rows = torch.tensor(index, device=cond.embeds.device)
        pooled = cond.pooled.index_select(0, rows.to(cond.pooled.device)) if cond.pooled is not None else None
        return Conditioning(embeds=cond.embeds.index_select(0, rows), pooled=pooled)

    def encode_distinct(
        self, texts: Sequence[str], clip_skip: int = 1, *, negative: bool = False
    ) -> tuple[list[str], Conditioning, list[int]]:
        """Like ``encode`` but one row per distinct text: ``(distinct, cond, index)``,
        ``texts[i] == distinct[index[i]]``."""
        texts = list(texts)
        if not texts:
            raise ValueError("encode() needs at least one text")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be str")
        clip_skip = max(1, int(clip_skip or 1))
        distinct: list[str] = []
        position: dict[str, int] = {}
        index: list[int] = []
        for text in texts:
            if text not in position:
                position[text] = len(distinct)
                distinct.append(text)
            index.append(position[text])
        counts = None
        if len(distinct) != len(texts):
            counts = torch.bincount(torch.tensor(index), minlength=len(distinct))

        per_branch = [[b.tokenize_line(t, self.emphasis)[0] for t in distinct] for b in self._branches]
        chunk_count = max(len(chunks) for per_text in per_branch for chunks in per_text)

        with torch.no_grad():
            zs = []
            pooled = None
            last = len(self._branches) - 1
            for chunk_index in range(chunk_count):
                parts = []
                for branch_index, (branch, per_text) in enumerate(zip(self._branches, per_branch)):
                    batch = [
                        chunks[chunk_index] if chunk_index < len(chunks) else branch.empty_chunk()
                        for chunks in per_text
                    ]
                    device, _ = branch.device_dtype()
                    ids = torch.tensor([c.tokens for c in batch], dtype=torch.long, device=device)
                    z, output = branch.hidden(ids, self._layer(branch_index, clip_skip))
                    multipliers = torch.tensor([c.multipliers for c in batch], dtype=z.dtype, device=z.device)
                    parts.append(_apply_emphasis(z, multipliers, self.emphasis, counts))
                    if chunk_index == 0 and self.family == "sdxl" and branch_index == last:
                        pooled = output.text_embeds
                out = parts[-1]
                zs.append(torch.cat([p.to(device=out.device, dtype=out.dtype) for p in parts], dim=-1))
            embeds = torch.cat(zs, dim=1)
            if pooled is not None:
                pooled = pooled.to(device=embeds.device, dtype=embeds.dtype)
            if negative and self.family == "sdxl" and all(text == "" for text in distinct):
                embeds = torch.zeros_like(embeds)
                pooled = torch.zeros_like(pooled) if pooled is not None else None
        return distinct, Conditioning(embeds=embeds, pooled=pooled), index

    # -- internals -------------------------------------------------------------------------

    def _layer(self, branch_index: int, clip_skip: int) -> tuple[int, bool]:
        """(hidden_states index or 0 for last_hidden_state, apply final layer norm)."""
        if self.family == "sdxl":
            if self.a1111_clip_skip or clip_skip <= 1:
                return -2, False
            return -(clip_skip + 1), False
        if self.family == "sd2" and self.a1111_clip_skip:
            return 0, False
        if clip_skip <= 1:
            return 0, False
        return -clip_skip, True
