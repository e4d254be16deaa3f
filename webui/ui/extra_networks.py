"""The extra-networks panel under the prompt of txt2img and img2img, as A1111 has it: tabs Checkpoints, Textual
Inversion and Lora with cards (preview image, name, base model, trigger words), search and sort.

* A Lora card inserts `<lora:name:1>` and its trigger words, a Textual Inversion card the embedding's word, into the
  prompt box focused last ("Insert into"); clicking a card whose tag is already there removes it again (A1111's
  toggle). A checkpoint card switches the checkpoint through the header's own load path.
* "Replace preview" on a card (shown on hover, as A1111's) saves the selected result image as the network's
  `name.preview.png` (refused while folders are locked: --listen, --share, --hide-ui-dir-config, --freeze-settings).
* A status line under the controls says what was inserted, removed, loaded or saved.

What the cards hold comes from the engine (`Engine.network_cards`). Previews are sent to the page as small
data-URI thumbnails, so the model folders stay out of Gradio's file route (they are in its blocked paths).
"""
from __future__ import annotations

import base64
import html
import io
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
from PIL import Image, ImageOps

from webui.engine import NETWORK_SORTS, NetworkCard, PreviewRefused

log = logging.getLogger(__name__)

TABS = (("checkpoints", "Checkpoints"), ("textual_inversion", "Textual Inversion"), ("lora", "Lora"))
SORT_CHOICES = {"Name (A-Z)": "name", "Name (Z-A)": "name-desc", "Newest first": "date", "Oldest first": "date-asc"}
TARGETS = ("Prompt", "Negative prompt")
KIND_WORDS = {"checkpoints": "checkpoint", "textual_inversion": "embedding", "lora": "LoRA"}
THUMB_SIDE = 256

CARDS_CSS = """
.ls-cards-head { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 2px 0 6px; }
.ls-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px;
            max-height: 440px; overflow-y: auto; padding: 2px; }
.ls-card { position: relative; border: 1px solid var(--border-color-primary); border-radius: 8px; overflow: hidden;
           cursor: pointer; background: var(--block-background-fill); display: flex; flex-direction: column; }
.ls-card:hover, .ls-card:focus-visible { border-color: var(--color-accent); outline: none;
                                         box-shadow: 0 0 0 1px var(--color-accent); }
.ls-card-img { width: 100%; aspect-ratio: 1; object-fit: cover; display: block;
               background: var(--background-fill-secondary); }
.ls-card-ph { width: 100%; aspect-ratio: 1; display: flex; align-items: center; justify-content: center;
              font-size: 2em; font-weight: 600; color: var(--body-text-color-subdued); letter-spacing: 0.05em;
              background: var(--background-fill-secondary); }
.ls-card-body { padding: 4px 6px 6px; }
.ls-card-name { font-weight: 600; font-size: 0.88em; word-break: break-word; }
.ls-card-info { font-size: 0.76em; color: var(--body-text-color-subdued); word-break: break-word; }
.ls-card-warn { font-size: 0.76em; color: #b45309; }
.ls-card-replace { position: absolute; top: 4px; right: 4px; padding: 1px 6px; border-radius: 6px; font-size: 0.75em;
                   border: 1px solid var(--border-color-primary); background: var(--block-background-fill);
                   cursor: pointer; opacity: 0; transition: opacity 0.15s; }
.ls-card:hover .ls-card-replace, .ls-card:focus-within .ls-card-replace { opacity: 0.95; }
.ls-cards-empty { padding: 10px; color: var(--body-text-color-subdued); }
"""

# one listener on the component's element (its cards are re-rendered into it): a card click inserts, its button
# replaces the preview; Enter / Space on a focused card act like a click
CARDS_JS = """
if (!element.dataset.lsCards) {
  element.dataset.lsCards = '1';
  const fire = (e) => {
    const card = e.target.closest('.ls-card');
    if (!card || !element.contains(card)) return;
    e.preventDefault();
    const action = e.target.closest('.ls-card-replace') ? 'preview' : 'insert';
    trigger('click', {key: card.dataset.key, action: action});
  };
  element.addEventListener('click', fire);
  element.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ' ') && e.target.classList.contains('ls-card')) fire(e);
  });
}
"""


def status_line(text: str, kind: str = "info") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


# ---- prompt text ------------------------------------------------------------------------------------------

def add_text(box: str | None, text: str) -> str:
    """Append with A1111's separator (a space)."""
    box = box or ""
    if not box.strip():
        return text
    return box + ("" if box.endswith((" ", "\n")) else " ") + text


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+,", ",", text)
    text = re.sub(r",(\s*,)+", ",", text)
    return re.sub(r"^[ ,]+|[ ,]+$", "", text, flags=re.MULTILINE)


def _lora_pattern(card: NetworkCard) -> re.Pattern:
    ref = card.tag[len("<lora:"):].rsplit(":", 1)[0]
    words = card.trigger_text
    after = rf"(?:[ \t]*,?[ \t]*{re.escape(words)}(?![\w-]))?" if words else ""
    return re.compile(r"<lora:" + re.escape(ref) + r"(?::[^>]*)?>" + after)


def _word_pattern(word: str) -> re.Pattern:
    return re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])")


def remove_card(box: str | None, card: NetworkCard) -> tuple[str, str] | None:
    """(`box` without the card's tag (any weight) and the trigger words right after it, the first text removed);
    None when it is not there."""
    box = box or ""
    pattern = _lora_pattern(card) if card.kind == "lora" else _word_pattern(card.tag)
    found = pattern.search(box)
    if found is None:
        return None
    return _tidy(pattern.sub("", box)), found.group(0).strip()


def toggle_card(box: str | None, card: NetworkCard) -> tuple[str, str, bool]:
    """(new text, the text inserted or removed, inserted?): inserts the card's text, or removes it when it is
    there already (A1111's second click)."""
    removed = remove_card(box, card)
    if removed is not None:
        return removed[0], removed[1], False
    return add_text(box, card.prompt), card.prompt, True


# ---- thumbnails -------------------------------------------------------------------------------------------

class Thumbnails:
    """Preview files -> small JPEG data URIs, kept while the file's size and mtime stay the same."""

    def __init__(self, side: int = THUMB_SIDE, limit: int = 1024):
        self.side, self.limit = side, limit
        self._cache: OrderedDict[str, tuple[tuple, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def uri(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            st = Path(path).stat()
        except OSError:
            return None
        key, stamp = str(path), (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[1]
        value = self._make(Path(path))
        with self._lock:
            self._cache[key] = (stamp, value)
            while len(self._cache) > self.limit:
                self._cache.popitem(last=False)
        return value

    def _make(self, path: Path) -> str | None:
        try:
            with Image.open(path) as im:
                im.draft("RGB", (self.side, self.side))
                im = ImageOps.exif_transpose(im)
                im.thumbnail((self.side, self.side))
                if im.mode in ("RGBA", "LA", "P"):
                    im = im.convert("RGBA")
                    flat = Image.new("RGB", im.size, (128, 128, 128))
                    flat.paste(im, mask=im.getchannel("A"))
                    im = flat
                im = im.convert("RGB")
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=85)
        except Exception as exc:  # noqa: BLE001 - a broken or huge file shows the placeholder
            log.warning("Preview %s could not be read: %s", path, exc)
            return None
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def initials(name: str) -> str:
    words = re.split(r"[\s_\-./]+", Path(name).name)
    return "".join(w[0] for w in words if w)[:2].upper() or "?"


def card_html(card: NetworkCard, thumbs: Thumbnails, can_replace: bool) -> str:
    esc = html.escape
    src = thumbs.uri(card.preview)
    picture = (f'<img class="ls-card-img" src="{src}" alt="" loading="lazy">' if src
               else f'<div class="ls-card-ph" aria-hidden="true">{esc(initials(card.name))}</div>')
    tip = "\n".join(x for x in (card.prompt or card.key, card.description, str(card.path.name)) if x)
    info = f'<div class="ls-card-info">{esc(card.info)}</div>' if card.info else ""
    warn = f'<div class="ls-card-warn">{esc(card.warning)}</div>' if card.warning else ""
    button = ('<button type="button" class="ls-card-replace" title="Replace preview: save the selected result '
              'image as this card\'s preview">Replace preview</button>') if can_replace else ""
    return (f'<div class="ls-card" role="button" tabindex="0" data-key="{esc(card.key)}" '
            f'data-name="{esc(card.name)}" title="{esc(tip)}">{picture}{button}'
            f'<div class="ls-card-body"><div class="ls-card-name">{esc(card.name)}</div>{info}{warn}</div></div>')


def empty_text(kind: str, settings, query: str) -> str:
    if query.strip():
        return f"Nothing matches “{query.strip()}”."
    if kind == "lora":
        where = ", ".join(str(d) for d in settings.lora_search_dirs[:2])
        return f"No LoRA files: put .safetensors files in {where}."
    if kind == "textual_inversion":
        return f"No embeddings: put .pt or .safetensors files in {settings.embeddings_path}."
    return "No checkpoints: put .safetensors files in " + ", ".join(str(d) for d in settings.checkpoint_dirs[:1])


def cards_page(cards: list[NetworkCard], kind: str, settings, query: str, thumbs: Thumbnails,
               can_replace: bool) -> str:
    if not cards:
        return f'<div class="ls-cards-empty">{html.escape(empty_text(kind, settings, query))}</div>'
    n = len(cards)
    what = KIND_WORDS[kind]
    act = "switches to it" if kind == "checkpoints" else "inserts it into the prompt (again: removes it)"
    head = f"{n} {what}{'s' if n != 1 else ''} · a click {act}"
    if can_replace:
        head += " · “Replace preview” on a card saves the selected result as its preview"
    body = "".join(card_html(c, thumbs, can_replace) for c in cards)
    return f'<div class="ls-cards-head">{html.escape(head)}</div><div class="ls-cards">{body}</div>'


def chosen_record(records, selected) -> dict | None:
    if not records:
        return None
    return records[selected if isinstance(selected, int) and 0 <= selected < len(records) else 0]


# ---- the panel --------------------------------------------------------------------------------------------

class ExtraNetworksPanel:
    """Built inside a GenerationPanel, right under its prompt row; wired by `webui.ui.build_ui` (which knows the
    header, for checkpoint cards)."""

    def __init__(self, ctx, mode: str):
        self.ctx = ctx
        self.mode = mode
        self.thumbs = Thumbnails()
        self.cards: dict[str, gr.HTML] = {}

    @property
    def settings(self):
        return self.ctx.engine.settings

    def can_replace(self) -> bool:
        return self.ctx.engine.previews_writable()

    def build(self) -> "ExtraNetworksPanel":
        m = self.mode
        with gr.Accordion("Extra networks: checkpoints, textual inversion, Lora", open=False,
                          elem_id=f"{m}_extra_networks") as self.accordion:
            with gr.Row(elem_classes="ls-tight ls-align-end"):
                self.search = gr.Textbox(label="Search", placeholder="name, trigger word, description",
                                         elem_id=f"{m}_extra_search", scale=3, min_width=200)
                self.sort = gr.Dropdown(list(SORT_CHOICES), value="Name (A-Z)", label="Sort",
                                        elem_id=f"{m}_extra_sort", scale=1, min_width=150)
                self.target = gr.Radio(list(TARGETS), value=TARGETS[0], label="Insert into",
                                       elem_id=f"{m}_extra_target", scale=2, min_width=220)
                self.refresh_btn = gr.Button("↻ Refresh", size="sm", elem_id=f"{m}_extra_refresh", scale=0,
                                             min_width=100, elem_classes="ls-inline-btn")
            self.status = gr.HTML(status_line("Click a card to insert it into the prompt"),
                                  elem_id=f"{m}_extra_status", js_on_load=None)
            with gr.Tabs(elem_id=f"{m}_extra_tabs"):
                for kind, label in TABS:
                    with gr.Tab(label, id=f"{m}_extra_{kind}", elem_id=f"{m}_{kind}_tab"):
                        self.cards[kind] = gr.HTML("", elem_id=f"{m}_{kind}_cards", css_template=CARDS_CSS,
                                                   js_on_load=CARDS_JS, apply_default_css=False)
        self.pending = gr.State(None)  # the title a checkpoint card asks to load
        return self

    # ---- handlers -------------------------------------------------------------------------------------
    def render(self, query, sort, refresh: bool = False) -> list[str]:
        """The three card pages (checkpoints, textual inversion, Lora) for a search and a sort."""
        query, key = query or "", SORT_CHOICES.get(sort, sort if sort in NETWORK_SORTS else "name")
        can = self.can_replace()
        out = []
        for kind, _ in TABS:
            try:
                cards = self.ctx.engine.network_cards(kind, query, key, refresh)
            except Exception as exc:  # noqa: BLE001 - an unreadable folder must not break the other tabs
                log.warning("extra networks %s: %s", kind, exc)
                out.append(f'<div class="ls-cards-empty">{html.escape(str(exc))}</div>')
                continue
            out.append(cards_page(cards, kind, self.settings, query, self.thumbs, can))
        return out

    def click(self, kind: str, key: str, action: str, prompt, negative, target, records, selected, query, sort):
        """A card click. Returns [prompt, negative, status, pending checkpoint title, this kind's cards]."""
        skip = gr.skip()
        card = self.ctx.engine.network_card(kind, key or "")
        if card is None:
            return [skip, skip, status_line(f"{KIND_WORDS[kind]} {key!r} is gone: press ↻ Refresh", "warn"), None,
                    self.render_kind(kind, query, sort, refresh=True)]
        if action == "preview":
            return [skip, skip, self.replace_preview(card, records, selected), None,
                    self.render_kind(kind, query, sort)]
        if kind == "checkpoints":
            active = self.ctx.engine.active_model()
            if active is not None and active.title == card.key:
                return [skip, skip, status_line(f"{card.key} is the loaded checkpoint", "ok"), None, skip]
            return [skip, skip, status_line(f"Loading checkpoint {card.key}…"), card.key, skip]
        into_negative = target == TARGETS[1]
        box = negative if into_negative else prompt
        where = f"{self.mode} {'negative prompt' if into_negative else 'prompt'}"
        new, what, inserted = toggle_card(box, card)
        new_prompt, new_negative = (skip, new) if into_negative else (new, skip)
        if not inserted:
            if card.negative and not into_negative:
                stripped = _word_free(negative, card.negative)
                new_negative = stripped if stripped is not None else skip
            return [new_prompt, new_negative, status_line(f"Removed {what} from the {where} (it was there; "
                                                          "click again to insert it)"), None, skip]
        text = f"Inserted {what} into the {where}"
        if card.kind == "lora" and not card.trigger_words:
            text += " (no trigger words known for it)"
        if card.negative and not into_negative and card.negative not in (negative or ""):
            new_negative = add_text(negative, card.negative)
            text += f"; {card.negative} into the negative prompt"
        kind_ = "ok"
        if card.warning:
            text += f". {card.warning}"
            kind_ = "warn"
        return [new_prompt, new_negative, status_line(text, kind_), None, skip]

    def render_kind(self, kind: str, query, sort, refresh: bool = False) -> str:
        key = SORT_CHOICES.get(sort, "name")
        cards = self.ctx.engine.network_cards(kind, query or "", key, refresh)
        return cards_page(cards, kind, self.settings, query or "", self.thumbs, self.can_replace())

    def replace_preview(self, card: NetworkCard, records, selected) -> str:
        rec = chosen_record(records, selected)
        target = card.preview_name
        if rec is None:
            return status_line(f"No result to use: generate an image first, select it, then press “Replace "
                               f"preview” to save it as {target}", "warn")
        try:
            image = rec.get("image")
            if image is None:
                with Image.open(rec["path"]) as im:
                    image = im.copy()
            saved = self.ctx.engine.save_network_preview(card, image, rec.get("infotext"))
        except PreviewRefused as exc:
            return status_line(str(exc), "error")
        except OSError as exc:
            return status_line(f"Could not save the preview of {card.name}: {exc}", "error")
        return status_line(f"Saved the selected result as the preview of {card.name} ({saved.name})", "ok")

    def switch_checkpoint(self, header, title, native, *sizes):
        """After a checkpoint card: load it as choosing it in the header's dropdown does. Outputs: the header's
        (checkpoint, model status, message, native, sizes...), then this panel's status and the consumed title."""
        n = 4 + len(sizes)
        if not title:
            yield [*[gr.skip()] * n, gr.skip(), None]
            return
        for values in header.switch(title, native, *sizes):
            yield [*values, gr.skip(), gr.skip()]
        st = self.ctx.status
        active = self.ctx.engine.active_model()
        if st.error and st.target == title:
            still = f"; still using {active.title}" if active is not None else ""
            yield [*[gr.skip()] * n, status_line(f"Could not load {title}: {st.error}{still}", "error"), None]
        else:
            yield [*[gr.skip()] * n, status_line(f"Loaded checkpoint {active.title if active else title}", "ok"),
                   None]

    # ---- events ---------------------------------------------------------------------------------------
    def wire(self, panel, header, sizes: list) -> None:
        private = dict(api_visibility="private")
        views = [self.cards[k] for k, _ in TABS]
        self.accordion.expand(self.render, [self.search, self.sort], views, show_progress="hidden", **private)
        self.search.change(self.render, [self.search, self.sort], views, trigger_mode="always_last",
                           show_progress="hidden", **private)
        self.sort.change(self.render, [self.search, self.sort], views, show_progress="hidden", **private)
        self.refresh_btn.click(lambda q, s: self.render(q, s, refresh=True), [self.search, self.sort], views,
                               **private)
        for label, box in zip(TARGETS, (panel.prompt, panel.negative)):
            box.focus(None, None, self.target, js=f"() => {label!r}", queue=False, show_progress="hidden", **private)
        header_outputs = [header.checkpoint, header.model_status, header.message, header.native, *sizes]
        for kind, _ in TABS:
            def on_click(prompt, negative, target, records, selected, query, sort, evt: gr.EventData, kind=kind):
                data = getattr(evt, "_data", None) or {}
                return self.click(kind, str(data.get("key") or ""), str(data.get("action") or "insert"), prompt,
                                  negative, target, records, selected, query, sort)

            event = self.cards[kind].click(
                on_click, [panel.prompt, panel.negative, self.target, panel.records, panel.selected, self.search,
                           self.sort],
                [panel.prompt, panel.negative, self.status, self.pending, self.cards[kind]],
                show_progress="hidden", **private)
            if kind == "checkpoints":
                def switch(title, native, *sz):
                    yield from self.switch_checkpoint(header, title, native, *sz)

                event.then(switch, [self.pending, header.native, *sizes], [*header_outputs, self.status, self.pending],
                           show_progress="hidden", concurrency_limit=None, **private)


def _word_free(text: str | None, words: str) -> str | None:
    """`text` without `words` (a negative text a LoRA card added); None when it is not there."""
    new, n = _word_pattern(words).subn("", text or "")
    return _tidy(new) if n else None
