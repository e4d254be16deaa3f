"""LoRA tab: cards (preview, name, base model, trigger words) for the files in the LoRA folders; clicking a card
inserts `<lora:name:1>` into the prompt chosen under "Insert into" (the prompt box last focused).

Until the engine has a LoRA registry, the files are found here: *.safetensors in settings.lora_search_dirs, with
the kohya-ss metadata from the safetensors header (ss_output_name, ss_base_model_version, ss_tag_frequency) and a
preview image next to the file (name.preview.png / name.png / .jpg / .webp).
"""
from __future__ import annotations

import html
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
PREVIEW_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".png", ".jpg", ".jpeg", ".webp")
MAX_HEADER = 100 * 1024 * 1024
TARGETS = ["txt2img prompt", "txt2img negative", "img2img prompt", "img2img negative"]

BASE_LABELS = {
    "sd_v1": "SD 1.x", "sd_v2": "SD 2.x", "sd_v2_768_v": "SD 2.x 768-v", "sdxl_base_v0-9": "SDXL",
    "sdxl_base_v1-0": "SDXL", "sd_v1_5": "SD 1.x",
}


@dataclass
class LoraCard:
    name: str  # what goes into <lora:name:1>: the file name without extension (as A1111)
    path: Path
    alias: str = ""  # ss_output_name
    base_model: str = "unknown"
    trigger_words: list[str] = field(default_factory=list)
    preview: Path | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"<lora:{self.name}:1>"


def read_safetensors_metadata(path: Path) -> dict:
    """The `__metadata__` of a safetensors header (strings), {} when there is none or the file is not valid."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                return {}
            (n,) = struct.unpack("<Q", raw)
            if n <= 0 or n > MAX_HEADER:
                return {}
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def _base_model(meta: dict) -> str:
    v = meta.get("ss_base_model_version") or meta.get("modelspec.architecture") or ""
    if not v:
        if meta.get("ss_sd_model_name") or meta.get("ss_network_module"):
            return "SD 1.x" if meta.get("ss_v2") in (None, "False") else "SD 2.x"
        return "unknown"
    if v in BASE_LABELS:
        return BASE_LABELS[v]
    low = v.lower()
    if "xl" in low:
        return "SDXL"
    if "v2" in low or "2-" in low:
        return "SD 2.x"
    if "v1" in low or "1-" in low:
        return "SD 1.x"
    return v


def _trigger_words(meta: dict, limit: int = 8) -> list[str]:
    raw = meta.get("ss_tag_frequency")
    if not raw:
        return []
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    counts: dict[str, int] = {}
    if isinstance(data, dict):
        for tags in data.values():
            if isinstance(tags, dict):
                for tag, n in tags.items():
                    try:
                        counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + int(n)
                    except (TypeError, ValueError):
                        continue
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if t][:limit]


def _preview_for(path: Path) -> Path | None:
    stem = path.with_suffix("")
    for suffix in PREVIEW_SUFFIXES:
        cand = stem.with_name(stem.name + suffix)
        if cand.is_file():
            return cand
    return None


def scan_loras(dirs: list[Path]) -> list[LoraCard]:
    cards: dict[str, LoraCard] = {}
    for folder in dirs:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in LORA_SUFFIXES:
                continue
            name = path.stem
            if name in cards:
                continue
            meta = read_safetensors_metadata(path) if path.suffix.lower() == ".safetensors" else {}
            cards[name] = LoraCard(name=name, path=path, alias=meta.get("ss_output_name", "") or "",
                                   base_model=_base_model(meta), trigger_words=_trigger_words(meta),
                                   preview=_preview_for(path), metadata=meta)
    return sorted(cards.values(), key=lambda c: c.name.lower())


def placeholder(name: str, size: int = 192) -> Image.Image:
    """A plain card image with the LoRA's initials, for files without a preview."""
    hue = sum(map(ord, name)) % 360
    img = Image.new("RGB", (size, size), _hsv(hue, 0.35, 0.45))
    d = ImageDraw.Draw(img)
    letters = "".join(w[0] for w in name.replace("-", " ").replace("_", " ").split()[:2]).upper() or "?"
    try:
        font = ImageFont.load_default(size=size // 3)
    except TypeError:  # old Pillow
        font = ImageFont.load_default()
    box = d.textbbox((0, 0), letters, font=font)
    d.text(((size - (box[2] - box[0])) / 2 - box[0], (size - (box[3] - box[1])) / 2 - box[1]), letters,
           fill=(240, 240, 240), font=font)
    return img


def _hsv(h: int, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h / 360, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def filter_cards(cards: list[LoraCard], query: str) -> list[LoraCard]:
    q = (query or "").strip().lower()
    if not q:
        return cards
    return [c for c in cards if q in c.name.lower() or q in c.alias.lower() or q in c.base_model.lower()
            or any(q in t.lower() for t in c.trigger_words)]


def insert_tag(prompt: str, tag: str) -> str:
    prompt = prompt or ""
    if tag in prompt:
        return prompt
    return f"{prompt.rstrip()} {tag}" if prompt.strip() else tag


def details_html(card: LoraCard | None) -> str:
    if card is None:
        return '<div class="ls-muted">Click a card to insert it into the prompt.</div>'
    rows = [("Name", card.name), ("Output name", card.alias or "—"), ("Base model", card.base_model),
            ("Trigger words", ", ".join(card.trigger_words) or "—"), ("File", str(card.path))]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="ls-kv">{body}</table>'


def build(ctx: UiContext, panels: dict[str, GenerationPanel]) -> gr.Radio:
    """Returns the "Insert into" radio (the prompt boxes set it when focused)."""
    dirs = ctx.engine.settings.lora_search_dirs
    with gr.Tab("LoRA", id="lora", elem_id="tab_lora") as tab:
        with gr.Row(elem_classes="ls-tight", equal_height=True):
            search = gr.Textbox(placeholder="Search name, base model or trigger word", show_label=False,
                                elem_id="lora_search", scale=4, min_width=240)
            target_radio = gr.Radio(TARGETS, value=TARGETS[0], label="Insert into", elem_id="lora_target", scale=4,
                                    min_width=300)
            refresh_btn = gr.Button("↻ Refresh", size="sm", elem_id="lora_refresh", scale=0, min_width=110)
        cards_state = gr.State([])
        gallery = gr.Gallery(label="LoRA", columns=6, height=480, allow_preview=False, object_fit="cover",
                             elem_id="lora_gallery", format="png", interactive=False, buttons=[])
        with gr.Row():
            details = gr.HTML(details_html(None), elem_id="lora_details", js_on_load=None)
        empty_note = ", ".join(str(d) for d in dirs[:2])
        message = gr.HTML(f'<div class="ls-hint">LoRA files go into {html.escape(empty_note)}</div>',
                          elem_id="lora_message", js_on_load=None)

    def render(query):
        cards = filter_cards(scan_loras(dirs), query)
        items = []
        for c in cards:
            caption = f"{c.name} · {c.base_model}"
            if c.trigger_words:
                caption += f" · {', '.join(c.trigger_words[:3])}"
            items.append((str(c.preview) if c.preview else placeholder(c.name), caption))
        note = f"{len(cards)} LoRA file{'s' if len(cards) != 1 else ''}"
        if not cards:
            note = "No LoRA files found in " + ", ".join(str(d) for d in dirs[:2])
        return items, cards, f'<div class="ls-hint">{html.escape(note)}</div>'

    boxes = [panels["txt2img"].prompt, panels["txt2img"].negative, panels["img2img"].prompt, panels["img2img"].negative]

    def pick(cards, where, *prompts, evt: gr.SelectData):
        idx = evt.index if isinstance(evt.index, int) else 0
        if not cards or idx >= len(cards):
            return [gr.skip()] * (len(boxes) + 1)
        card = cards[idx]
        where = where if where in TARGETS else TARGETS[0]
        out = [gr.skip()] * len(boxes)
        i = TARGETS.index(where)
        out[i] = insert_tag(prompts[i], card.tag)
        return [*out, details_html(card)]

    search.change(render, search, [gallery, cards_state, message], trigger_mode="always_last",
                  show_progress="hidden", api_visibility="private")
    refresh_btn.click(render, search, [gallery, cards_state, message], api_visibility="private")
    gallery.select(pick, [cards_state, target_radio, *boxes], [*boxes, details], api_visibility="private")
    tab.select(render, search, [gallery, cards_state, message], api_visibility="private")  # scan when opened
    return target_radio
