"""LoRA tab: cards (preview, name, base model, trigger words) for the engine's LoRA library (models/Lora,
models/LyCORIS, --lora-dir); clicking a card inserts `<lora:name:1>` (or its preferred weight) into the prompt chosen
under "Insert into" (the prompt box focused last)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel

TARGETS = ["txt2img prompt", "txt2img negative", "img2img prompt", "img2img negative"]
VERSION_LABELS = {"SD1": "SD 1.x", "SD2": "SD 2.x", "SDXL": "SDXL"}


@dataclass
class LoraCard:
    name: str  # what goes into <lora:name:w>: the file name without extension (as A1111)
    path: Path
    alias: str = ""
    base_model: str = "unknown"
    trigger_words: list[str] = field(default_factory=list)
    preview: Path | None = None
    weight: float = 1.0

    @property
    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>"


def card_from_info(info) -> LoraCard:
    """A card from the engine's LoraInfo (its `.details()`)."""
    d = info.details()
    try:
        weight = float(d.get("preferred_weight") or 1.0) or 1.0
    except (TypeError, ValueError):
        weight = 1.0
    return LoraCard(name=d["name"], path=Path(d["path"]), alias=d.get("alias") or "",
                    base_model=VERSION_LABELS.get(d.get("sd_version"), "unknown"),
                    trigger_words=list(d.get("trigger_words") or [])[:8],
                    preview=Path(d["preview"]) if d.get("preview") else None, weight=weight)


def list_cards(engine, refresh: bool = False) -> list[LoraCard]:
    return [card_from_info(i) for i in engine.list_loras(refresh=refresh)]


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
            ("Inserts", card.tag),
            ("Trigger words", ", ".join(card.trigger_words) or "—"), ("File", card.path.name)]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="ls-kv">{body}</table>'


def build(ctx: UiContext, panels: dict[str, GenerationPanel]) -> gr.Radio:
    """Returns the "Insert into" radio (the prompt boxes set it when focused)."""
    dirs = ctx.engine.settings.lora_search_dirs
    engine = ctx.engine
    with gr.Tab("LoRA", id="lora", elem_id="tab_lora") as tab:
        with gr.Row(elem_classes="ls-tight ls-align-end"):
            search = gr.Textbox(placeholder="name, base model or trigger word", label="Search",
                                elem_id="lora_search", scale=3, min_width=220)
            target_radio = gr.Radio(TARGETS, value=TARGETS[0], label="Insert into", elem_id="lora_target", scale=6,
                                    min_width=300)
            refresh_btn = gr.Button("↻ Refresh", size="sm", elem_id="lora_refresh", scale=0, min_width=110,
                                    elem_classes="ls-inline-btn")
        cards_state = gr.State([])
        with gr.Row(equal_height=False):
            gallery = gr.Gallery(label="LoRA", columns=6, height=480, allow_preview=False, object_fit="cover",
                                 fit_columns=False, elem_id="lora_gallery", format="png", interactive=False,
                                 buttons=[], scale=3)
            with gr.Column(scale=1, min_width=260):
                empty_note = ", ".join(str(d) for d in dirs[:2])
                message = gr.HTML(f'<div class="ls-hint">LoRA files go into {html.escape(empty_note)}</div>',
                                  elem_id="lora_message", js_on_load=None)
                details = gr.HTML(details_html(None), elem_id="lora_details", js_on_load=None)

    def render(query, refresh=False):
        cards = filter_cards(list_cards(engine, refresh), query)
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

    def pick(cards, where, p0, p1, p2, p3, evt: gr.SelectData):
        prompts = (p0, p1, p2, p3)
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
    refresh_btn.click(lambda q: render(q, True), search, [gallery, cards_state, message], api_visibility="private")
    gallery.select(pick, [cards_state, target_radio, *boxes], [*boxes, details], api_visibility="private")
    tab.select(render, search, [gallery, cards_state, message], api_visibility="private")  # scan when opened
    return target_radio
