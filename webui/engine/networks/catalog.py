"""What the extra-networks cards show and do, without any UI: one `NetworkCard` per checkpoint, textual-inversion
embedding and LoRA file, with its preview image, A1111 user metadata, date, and the text a click puts into a prompt;
and `save_preview`, which writes a network's `name.preview.png` (A1111's "Replace preview").

Files next to a model, as A1111 and the civitai helpers write them:

* `name.preview.png` (or `name.png`, also .jpg/.jpeg/.webp/.gif): the card's picture;
* `name.json`: A1111's user metadata (its "Edit metadata" dialog): `description`, `activation text`,
  `preferred weight`, `negative text`, `notes`.

A LoRA card inserts `<lora:name:w>` (w: the user metadata's preferred weight, else A1111's default multiplier 1)
followed by its trigger words: the user metadata's `activation text`, else the file's `modelspec.trigger_phrase`,
else kohya's `ss_tag_frequency` (the most frequent tag of each training folder: the caption every image shared).
An embedding card inserts its word (the file name), a checkpoint card names the checkpoint to switch to.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from webui.engine.networks.common import NetworkError, find_preview, model_base, read_user_metadata

KINDS = ("checkpoints", "textual_inversion", "lora")  # A1111's extra-network tab names (its element ids)
MAX_TAG_TRIGGERS = 3
VERSION_LABELS = {"SD1": "SD 1.x", "SD2": "SD 2.x", "SDXL": "SDXL"}


class PreviewRefused(NetworkError):
    """A preview may not be written (folders locked, or a path outside the model folders)."""


@dataclass
class NetworkCard:
    kind: str  # one of KINDS
    key: str  # what identifies it within its kind: checkpoint title, embedding name, LoRA rel path
    name: str  # shown on the card
    path: Path  # the model file (or diffusers folder)
    preview: Path | None = None
    mtime: float = 0.0
    description: str = ""
    tag: str = ""  # `<lora:name:w>` or the embedding's word ("" for a checkpoint)
    trigger_words: list[str] = field(default_factory=list)  # inserted after a LoRA's tag
    negative: str = ""  # A1111 user metadata 'negative text': inserted into the negative prompt
    info: str = ""  # a short line under the name (base model, vectors ...)
    warning: str = ""  # e.g. an embedding the loaded model skips
    search_terms: tuple[str, ...] = ()

    @property
    def preview_name(self) -> str:
        """The file "Replace preview" writes next to the model: `name.preview.png`."""
        return preview_target(self.path).name

    @property
    def trigger_text(self) -> str:
        return ", ".join(self.trigger_words)

    @property
    def prompt(self) -> str:
        """What a click inserts: the tag, then the trigger words (A1111: `<lora:name:1> activation text`)."""
        return " ".join(x for x in (self.tag, self.trigger_text) if x)

    def matches(self, query: str) -> bool:
        """Every word of the query occurs in the name, file path, description or trigger words (any case)."""
        words = (query or "").lower().split()
        hay = " ".join((self.name, str(self.path), self.description, self.info, *self.trigger_words,
                        *self.search_terms)).lower()
        return all(w in hay for w in words)


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _weight(meta: dict) -> float:
    try:
        w = float(meta.get("preferred weight") or 0)
    except (TypeError, ValueError):
        return 1.0
    return w if w else 1.0  # A1111: 0 (unset) means the default multiplier


def lora_trigger_words(info, user_meta: dict | None = None) -> list[str]:
    """What goes after the LoRA's tag: A1111's 'activation text', else `modelspec.trigger_phrase`, else the most
    frequent tag of each training folder of `ss_tag_frequency` (ties included, at most 3)."""
    meta = info.user_metadata if user_meta is None else user_meta
    activation = str(meta.get("activation text") or "").strip()
    if activation:
        return [activation]
    phrase = info.metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str) and phrase.strip():
        return [phrase.strip()]
    freq = info.metadata.get("ss_tag_frequency")
    out: list[str] = []
    if isinstance(freq, dict):
        for tags in freq.values():
            if not isinstance(tags, dict):
                continue
            counts: Counter = Counter()
            for tag, n in tags.items():
                try:
                    counts[str(tag).strip()] += int(n)
                except (TypeError, ValueError):
                    pass
            counts.pop("", None)
            if not counts:
                continue
            top = max(counts.values())
            out += [t for t, n in counts.most_common() if n == top and t not in out]
    return out[:MAX_TAG_TRIGGERS]


def lora_cards(engine, refresh: bool = False) -> list[NetworkCard]:
    infos = engine.list_loras(refresh=refresh)
    stems = Counter(i.name.lower() for i in infos)
    cards = []
    for info in infos:
        meta = read_user_metadata(info.path)  # fresh: the user may have edited it since the scan
        words = lora_trigger_words(info, meta)
        # `<lora:subfolder/name>` when two files share a name (the engine's find() takes either)
        ref = info.rel if stems[info.name.lower()] > 1 else info.name
        tag = f"<lora:{ref}:{_weight(meta):g}>"
        version = VERSION_LABELS.get(info.sd_version, "")
        cards.append(NetworkCard(
            kind="lora", key=info.rel, name=info.name, path=info.path, preview=find_preview(info.path),
            mtime=_mtime(info.path), description=str(meta.get("description") or ""),
            tag=tag, negative=str(meta.get("negative text") or "").strip(),
            trigger_words=words, info=" · ".join(x for x in (version, ", ".join(words)) if x),
            search_terms=(info.alias, info.rel, *info.trigger_words())))
    return cards


def embedding_cards(engine, refresh: bool = False) -> list[NetworkCard]:
    library = engine.networks.embeddings
    library.refresh(force=refresh)  # without `refresh`: rescanned only when the folder changed
    skipped = library.report(engine.active_model(), with_reasons=True)["skipped"]
    cards = []
    for emb in sorted(library.list(), key=lambda e: e.name.lower()):
        meta = read_user_metadata(emb.path)
        vectors = f"{emb.num_vectors} vector{'s' if emb.num_vectors != 1 else ''}"
        family = "SDXL" if "clip_l" in emb.vectors else {768: "SD 1.x", 1024: "SD 2.x"}.get(emb.shape, "")
        warning = ""
        if emb.name in skipped:
            why = skipped[emb.name].get("reason") or "it does not fit the loaded model"
            warning = f"Not used with the loaded checkpoint: {why}"
        cards.append(NetworkCard(
            kind="textual_inversion", key=emb.name, name=emb.name, path=emb.path, preview=find_preview(emb.path),
            mtime=_mtime(emb.path), description=str(meta.get("description") or ""), tag=emb.name,
            negative=str(meta.get("negative text") or "").strip(),
            info=" · ".join(x for x in (family, vectors) if x), warning=warning))
    return cards


def checkpoint_cards(engine, refresh: bool = False) -> list[NetworkCard]:
    cards = []
    for info in engine.list_checkpoints(refresh=refresh):
        meta = read_user_metadata(info.path)
        cards.append(NetworkCard(
            kind="checkpoints", key=info.title, path=info.path,
            name=info.name if info.is_diffusers_folder else Path(info.name).with_suffix("").as_posix(),
            preview=find_preview(info.path), mtime=_mtime(info.path), description=str(meta.get("description") or ""),
            info=info.title, search_terms=(info.title,)))
    return cards


def network_cards(engine, kind: str, refresh: bool = False) -> list[NetworkCard]:
    """The cards of one kind (`KINDS`), in the libraries' order (by name)."""
    if kind == "lora":
        return lora_cards(engine, refresh)
    if kind == "textual_inversion":
        return embedding_cards(engine, refresh)
    if kind == "checkpoints":
        return checkpoint_cards(engine, refresh)
    raise ValueError(f"unknown kind of network {kind!r}; one of {', '.join(KINDS)}")


def find_card(engine, kind: str, key: str) -> NetworkCard | None:
    """The card a UI names (by kind and key); None for an unknown one (paths are never taken from a client)."""
    for card in network_cards(engine, kind):
        if card.key == key:
            return card
    return None


SORTS = NETWORK_SORTS = ("name", "name-desc", "date", "date-asc")


def search_and_sort(cards: list[NetworkCard], query: str = "", sort: str = "name") -> list[NetworkCard]:
    """`search` (every word must match) then sort: name (A-Z, case-insensitive), name-desc, date (newest first),
    date-asc (oldest first); ties by name."""
    out = [c for c in cards if c.matches(query)]
    by_name = sorted(out, key=lambda c: (c.name.lower(), str(c.path)))
    if sort == "name-desc":
        return by_name[::-1]
    if sort == "date":
        return sorted(by_name, key=lambda c: -c.mtime)
    if sort == "date-asc":
        return sorted(by_name, key=lambda c: c.mtime)
    return by_name


# ---- "Replace preview" -----------------------------------------------------------------------------------

def model_folders(settings) -> list[Path]:
    """Where network files live: the checkpoint, LoRA/LyCORIS and embedding folders."""
    return [*settings.checkpoint_dirs, *settings.lora_search_dirs, settings.embeddings_path]


def preview_target(path: Path) -> Path:
    """Where "Replace preview" writes: `name.preview.png` next to the model file, as A1111."""
    return Path(f"{model_base(path)}.preview.png")


def check_preview_allowed(settings) -> None:
    """PreviewRefused while settings are frozen or folders locked (a server reachable from other machines)."""
    if settings.freeze_settings:
        raise PreviewRefused("Previews cannot be replaced: settings are frozen (--freeze-settings)")
    if settings.lock_folders:
        raise PreviewRefused("Previews cannot be replaced: the model folders are locked because the server is "
                             "reachable from other machines (--listen, --share) or was started with "
                             "--hide-ui-dir-config")


def _inside(path: Path, folders: list[Path]) -> bool:
    p = Path(os.path.abspath(path))
    for folder in folders:
        root = Path(os.path.abspath(folder))
        if root in p.parents:
            return True
    return False


def save_preview(settings, model_path: Path, image, infotext: str | None = None) -> Path:
    """Write `image` as the model's `name.preview.png` (with its infotext, as A1111 keeps it), atomically: a
    symlink of that name is replaced, never followed. Only for a model file inside the model folders, and only
    while folders are not locked (`PreviewRefused` otherwise)."""
    from webui.engine.image_files import save_image_with_infotext

    check_preview_allowed(settings)
    model_path = Path(model_path)
    target = preview_target(model_path)
    folders = model_folders(settings)
    if ".." in model_path.parts or not _inside(model_path, folders) or not _inside(target, folders):
        raise PreviewRefused(f"{model_path} is not inside the model folders; previews are only written there")
    if not model_path.exists():
        raise PreviewRefused(f"{model_path.name} no longer exists")
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return save_image_with_infotext(image, target, infotext, format="PNG")
