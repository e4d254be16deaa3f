"""Textual-inversion embeddings: the files of embeddings/ (--embeddings-dir), which of them fit the loaded model,
and loading them into its tokenizer(s) and text encoder(s) with diffusers' `load_textual_inversion`.

Formats (A1111's): .pt/.bin pickles read with ``torch.load(weights_only=True)`` only (a pickle that holds code is
refused before anything in it runs), holding ``string_to_param`` ({'*': [n, dim]}, A1111 training output) or
``emb_params``; .safetensors with ``emb_params``, SDXL's ``clip_l`` + ``clip_g``, or a single tensor (diffusers'
learned_embeds layout). The file name (without extension) is the trigger word; a multi-vector embedding becomes the
tokens ``name``, ``name_1`` ... (diffusers' convention, which the prompt encoder expands back).

An embedding fits a model when its width equals the text encoder's token-embedding width (768 for SD 1.x, 1024 for
SD 2.x; SDXL needs ``clip_l`` for the first encoder and ``clip_g`` for the second). Others are listed as skipped.
"""
from __future__ import annotations

import logging
import pickle
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.engine.networks.common import StampedCache, file_stamp, tree_stamp, walk_files

log = logging.getLogger(__name__)

EMBEDDING_SUFFIXES = (".pt", ".bin", ".safetensors")


@dataclass
class Embedding:
    name: str
    path: Path
    vectors: dict[str, torch.Tensor]  # "" (one text encoder) or "clip_l" + "clip_g" (SDXL); each [n, dim]
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    stamp: tuple = ()

    @property
    def num_vectors(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    @property
    def shape(self) -> int:
        """A1111's `shape`: the vector width (clip_l + clip_g widths for SDXL)."""
        return sum(int(v.shape[-1]) for v in self.vectors.values())

    def as_api(self) -> dict:
        return {"step": self.step, "sd_checkpoint": self.sd_checkpoint, "sd_checkpoint_name": self.sd_checkpoint_name,
                "shape": self.shape, "vectors": self.num_vectors}


class EmbeddingFileError(ValueError):
    pass


def read_embedding(path: Path) -> Embedding:
    """Parse one embedding file; raises EmbeddingFileError with the reason (refused pickles included)."""
    path = Path(path)
    meta: dict = {}
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            data = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise EmbeddingFileError(f"not a valid .safetensors file: {exc}") from exc
    else:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()]
            detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), "")
            raise EmbeddingFileError("refused: the pickle holds code or objects other than tensors (only "
                                     f"weights-only pickles are read){': ' + detail if detail else ''}") from exc
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError) as exc:
            raise EmbeddingFileError(f"not a readable PyTorch file: {exc}") from exc
    if not isinstance(data, dict):
        raise EmbeddingFileError("the file holds no embedding (not a dict)")

    vectors: dict[str, torch.Tensor]
    if "clip_l" in data or "clip_g" in data:
        if not (torch.is_tensor(data.get("clip_l")) and torch.is_tensor(data.get("clip_g"))):
            raise EmbeddingFileError("SDXL embedding without both clip_l and clip_g")
        vectors = {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    elif isinstance(data.get("string_to_param"), dict):
        params = [v for v in data["string_to_param"].values() if torch.is_tensor(v)]
        if len(params) != 1:
            raise EmbeddingFileError("string_to_param must hold exactly one tensor")
        vectors = {"": params[0]}
    elif torch.is_tensor(data.get("emb_params")):
        vectors = {"": data["emb_params"]}
    else:
        tensors = [v for v in data.values() if torch.is_tensor(v)]
        if len(data) == 1 and len(tensors) == 1:  # diffusers learned_embeds: {token: [dim] or [n, dim]}
            vectors = {"": tensors[0]}
        else:
            raise EmbeddingFileError(f"unknown embedding layout (keys: {', '.join(map(str, list(data)[:6]))})")
    out = {}
    for k, v in vectors.items():
        v = v.detach().to(torch.float32)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[0] < 1:
            raise EmbeddingFileError(f"unexpected tensor shape {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):  # would make the whole prompt's conditioning NaN: a black image
            raise EmbeddingFileError("broken: its vectors hold NaN/Inf values")
        out[k] = v
    if "clip_l" in out and out["clip_l"].shape[0] != out["clip_g"].shape[0]:
        raise EmbeddingFileError("clip_l and clip_g have different numbers of vectors")

    def _int(x):
        try:
            return int(x)
        except (TypeError, ValueError):
            return None

    def _str(x):
        return x if isinstance(x, str) else None

    return Embedding(name=path.stem, path=path, vectors=out,
                     step=_int(data.get("step", meta.get("step"))),
                     sd_checkpoint=_str(data.get("sd_checkpoint", meta.get("sd_checkpoint"))),
                     sd_checkpoint_name=_str(data.get("sd_checkpoint_name", meta.get("sd_checkpoint_name"))))


def _text_encoders(model) -> list[tuple[str, object, object]]:
    """(vector key, tokenizer, text encoder) of the model's encoders."""
    c = model.components
    if model.family == "sdxl":
        return [("clip_l", c["tokenizer"], c["text_encoder"]), ("clip_g", c["tokenizer_2"], c["text_encoder_2"])]
    return [("", c["tokenizer"], c["text_encoder"])]


def fit_reason(emb: Embedding, model) -> str | None:
    """Why `emb` cannot be used with `model` (None when it fits)."""
    for key, tok, te in _text_encoders(model):
        width = te.get_input_embeddings().weight.shape[-1]
        vec = emb.vectors.get(key)
        if vec is None:
            have = "SDXL (clip_l + clip_g)" if "clip_l" in emb.vectors else f"one {emb.shape}-wide vector set"
            need = "clip_l + clip_g" if model.family == "sdxl" else f"{width}-wide vectors"
            return f"made for another model family: it has {have}, this model needs {need}"
        if vec.shape[-1] != width:
            return f"vectors are {vec.shape[-1]} wide, this model's text encoder takes {width}"
    return None


@dataclass
class ModelEmbeddings:
    """What was loaded into one model's tokenizers (kept in ``model.embeddings``)."""
    loaded: dict[str, tuple] = field(default_factory=dict)  # name -> file stamp
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason

    @staticmethod
    def of(model) -> "ModelEmbeddings":
        if model.embeddings is None:
            model.embeddings = ModelEmbeddings()
        return model.embeddings


class EmbeddingLibrary:
    """The embedding files of one folder (rescanned when files are added/removed/changed)."""

    def __init__(self, folder: Path, hashes=None):
        self.folder = Path(folder)
        self.hashes = hashes  # the engine's HashCache (sha256 on disk), optional
        self._items: dict[str, Embedding] = {}
        self.errors: dict[str, str] = {}  # name -> why the file could not be read
        self._files = StampedCache()
        self._stamp = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = True) -> list[Embedding]:
        stamp = (tree_stamp([self.folder]), self._file_stamps())
        if not force and stamp == self._stamp:
            return self.list()
        items, errors = {}, {}
        if self.folder.is_dir():
            for path in walk_files(self.folder, EMBEDDING_SUFFIXES):
                name = path.stem
                if name in items or name in errors:
                    continue  # first file of a name wins
                try:
                    emb = self._files.get("embedding", path, _read_or_error)
                except OSError as exc:
                    emb = EmbeddingFileError(str(exc))
                if isinstance(emb, Embedding):
                    emb.stamp = file_stamp(path)
                    items[name] = emb
                else:
                    errors[name] = str(emb)
                    log.warning("Embedding %s not loaded: %s", path, emb)
        with self._lock:
            self._items, self.errors, self._stamp = items, errors, stamp
        return self.list()

    def _file_stamps(self) -> tuple:
        if not self.folder.is_dir():
            return ()
        out = []
        for p in walk_files(self.folder, EMBEDDING_SUFFIXES):
            try:
                out.append((str(p), file_stamp(p)))
            except OSError:
                pass
        return tuple(out)

    def list(self) -> list[Embedding]:
        with self._lock:
            return list(self._items.values())

    def get(self, name: str) -> Embedding | None:
        with self._lock:
            return self._items.get(name)

    def short_hash(self, emb: Embedding) -> str:
        """A1111 `TI hashes`: the first 12 hex digits of the file's SHA-256."""
        if self.hashes is not None:
            return self.hashes.sha256(emb.path)[:12]
        from webui.engine.networks.common import sha256_file

        return self._files.get("sha256", emb.path, sha256_file)[:12]

    # ---- per model -------------------------------------------------------------------------------------------
    def ensure_loaded(self, model, pipe) -> ModelEmbeddings:
        """Load every fitting embedding not yet in the model's tokenizers (rescanning the folder if it changed)."""
        self.refresh(force=False)
        state = ModelEmbeddings.of(model)
        encoders = _text_encoders(model)
        new: list[Embedding] = []
        skipped: dict[str, str] = {}
        for emb in self.list():
            if emb.name in state.loaded:
                if state.loaded[emb.name] != emb.stamp:
                    self._update_in_place(emb, encoders, state, skipped)
                continue
            reason = fit_reason(emb, model)
            if reason is None:
                reason = self._clash(emb, encoders)
            if reason is not None:
                skipped[emb.name] = reason
                continue
            new.append(emb)
        if new:
            for key, tok, te in encoders:
                pipe.load_textual_inversion([e.vectors[key] for e in new], token=[e.name for e in new],
                                            tokenizer=tok, text_encoder=te)
            for e in new:
                state.loaded[e.name] = e.stamp
            log.info("Loaded %d embedding(s) into %s", len(new), model.title)
        state.skipped = skipped
        return state

    @staticmethod
    def _clash(emb: Embedding, encoders) -> str | None:
        for _, tok, _ in encoders:
            vocab = tok.get_vocab()
            if emb.name in vocab or f"{emb.name}_1" in vocab:
                return f"its name {emb.name!r} is already a token of the tokenizer (rename the file)"
        return None

    @staticmethod
    def _update_in_place(emb: Embedding, encoders, state: ModelEmbeddings, skipped: dict) -> None:
        """A changed file: same number of vectors -> new values in the same rows; otherwise it needs a reload."""
        tok0 = encoders[0][1]
        n_old = 1
        while f"{emb.name}_{n_old}" in tok0.get_vocab():
            n_old += 1
        if n_old != emb.num_vectors or any(key not in emb.vectors for key, _, _ in encoders):
            skipped[emb.name] = "the file changed its number of vectors; reload the checkpoint to use it"
            return
        with torch.no_grad():
            for key, tok, te in encoders:
                weight = te.get_input_embeddings().weight
                for i, vec in enumerate(emb.vectors[key]):
                    token = emb.name if i == 0 else f"{emb.name}_{i}"
                    weight[tok.convert_tokens_to_ids(token)] = vec.to(weight.device, weight.dtype)
        state.loaded[emb.name] = emb.stamp

    def report(self, model=None, with_reasons: bool = False) -> dict:
        """A1111's GET /sdapi/v1/embeddings: {"loaded": {name: {...}}, "skipped": {name: {...}}}. Without a
        model every readable file is 'loaded'. Unreadable files are not listed (see `errors`)."""
        loaded, skipped = {}, {}
        state = ModelEmbeddings.of(model) if model is not None else None
        for emb in self.list():
            item = emb.as_api()
            reason = None
            if model is not None:
                reason = state.skipped.get(emb.name) if emb.name in state.skipped else fit_reason(emb, model)
            if reason is None:
                loaded[emb.name] = item
            else:
                skipped[emb.name] = {**item, "reason": reason} if with_reasons else item
        return {"loaded": loaded, "skipped": skipped}

    def used_in(self, model, texts: list[str]) -> list[Embedding]:
        """The loaded embeddings whose trigger word occurs in `texts` (as the tokenizer sees it)."""
        state = ModelEmbeddings.of(model)
        if not state.loaded:
            return []
        tok = _text_encoders(model)[0][1]
        ids_by_name = {name: tok.convert_tokens_to_ids(name) for name in state.loaded}
        seen: set[int] = set()
        for text in set(texts):
            if text:
                seen.update(tok(text, add_special_tokens=False, truncation=False).input_ids)
        out = []
        for name, tid in ids_by_name.items():
            if tid in seen and self.get(name) is not None:
                out.append(self.get(name))
        return out


def _read_or_error(path: Path):
    try:
        return read_embedding(path)
    except EmbeddingFileError as exc:
        return exc
