"""The token view: a prompt as the model's encoder really splits it - ids and sub-words, BOS, EOS and the padding
to 77, the 75-token chunks (and which chunk a BREAK ended), A1111's weight on each token and which tokens an
embedding occupies. The chunks come from the encoder's own chunking (`PromptEncoder.tokenize`), never a copy of it.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from webui.engine.prompts.encoder import CHUNK_LENGTH

CHUNK_SIZE = CHUNK_LENGTH + 2  # [BOS] + 75 + [EOS]
_BREAK = re.compile(r"\bBREAK\b")


@dataclass
class TokenInfo:
    index: int  # position in the encoded sequence (chunk * 77 + position): the key axis of cross-attention
    chunk: int
    position: int  # 0..76 inside its chunk
    id: int
    text: str  # the tokenizer's own sub-word ("circle</w>")
    word: str  # for display ("circle")
    weight: float  # A1111's emphasis weight (1.0 for BOS/EOS/padding)
    kind: str  # "bos" | "eos" | "pad" | "word" | "embedding"
    embedding: str | None = None  # the embedding whose vector this is


@dataclass
class TokenChunk:
    tokens: list[TokenInfo]
    ended_by_break: bool = False

    @property
    def used(self) -> int:
        """Prompt tokens in the chunk (not counting BOS, EOS and padding)."""
        return sum(t.kind in ("word", "embedding") for t in self.tokens)


@dataclass
class TokenView:
    prompt: str  # the text the encoder saw (extra-network tags removed)
    chunks: list[TokenChunk]
    count: int  # A1111's counter: (count, limit)
    limit: int
    embeddings: dict[str, list[int]] = field(default_factory=dict)  # name -> token indexes it occupies

    def prompt_tokens(self) -> list[TokenInfo]:
        """The word and embedding tokens (what attention maps are made for)."""
        return [t for c in self.chunks for t in c.tokens if t.kind in ("word", "embedding")]

    def ids(self) -> list[list[int]]:
        return [[t.id for t in c.tokens] for c in self.chunks]

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "count": self.count, "limit": self.limit, "chunk_size": CHUNK_SIZE,
                "embeddings": self.embeddings,
                "chunks": [{"ended_by_break": c.ended_by_break, "used": c.used,
                            "tokens": [asdict(t) for t in c.tokens]} for c in self.chunks]}


def token_view(encoder, tokenizer, text: str, embedding_names: list[str] = ()) -> TokenView:
    """The token view of `text` for the encoder's first tokenizer. `embedding_names`: the embeddings loaded into
    that tokenizer (a multi-vector one occupies `name`, `name_1`, ... as diffusers' load_textual_inversion adds)."""
    owners = _embedding_tokens(tokenizer, embedding_names)
    specials = {tokenizer.bos_token_id: "bos", tokenizer.eos_token_id: "eos"}
    raw = encoder.tokenize(text)
    breaks = _break_chunks(encoder, text)
    chunks, embeddings = [], {}
    for c, chunk in enumerate(raw):
        infos, ended = [], False
        for p, (tid, weight) in enumerate(zip(chunk.tokens, chunk.multipliers)):
            kind = _kind(p, tid, specials, ended, owners)
            ended = ended or (p > 0 and kind in ("eos", "pad"))
            piece = tokenizer.convert_ids_to_tokens(tid)
            info = TokenInfo(c * CHUNK_SIZE + p, c, p, int(tid), piece, _display(piece), float(weight), kind,
                             owners.get(tid))
            if info.embedding:
                embeddings.setdefault(info.embedding, []).append(info.index)
            infos.append(info)
        chunks.append(TokenChunk(infos, c in breaks))
    count, limit = encoder.token_count(text)
    return TokenView(text, chunks, count, limit, embeddings)


def _kind(position: int, tid: int, specials: dict, ended: bool, owners: dict) -> str:
    if position == 0:
        return "bos"
    if ended:
        return "pad"  # everything after the first EOS (EOS itself for SD1, "!" for SD2/SDXL's second tokenizer)
    if position == CHUNK_SIZE - 1 or specials.get(tid) == "eos":
        return "eos"
    return "embedding" if tid in owners else "word"


def _display(piece: str) -> str:
    return piece.removesuffix("</w>")


def _embedding_tokens(tokenizer, names) -> dict[int, str]:
    """Token id -> embedding name, for every vector of every loaded embedding."""
    vocab = tokenizer.get_vocab()
    owners = {}
    for name in names:
        i, token = 0, name
        while token in vocab:
            owners[vocab[token]] = name
            i += 1
            token = f"{name}_{i}"
    return owners


def _break_chunks(encoder, text: str) -> set[int]:
    """The chunks that a BREAK ended: the last chunk of the text up to each BREAK, as the encoder chunks it (the
    text up to a BREAK chunks the same way as that part of the whole text does)."""
    if getattr(encoder, "emphasis", "Original") == "None":
        return set()  # BREAK is a plain word then
    return {len(encoder.tokenize(text[:m.end()])) - 1 for m in _BREAK.finditer(text)}
