"""Parameter recall: an infotext -> the values of one tab's fields, the checkpoint and VAE it names, and a notice of
every key it could not restore (never dropped silently). Used by ↙, PNG Info, History and the "Send to" buttons.

No gradio here: `webui.ui.generation` turns a `Recall` into field updates and the status line, and the header
switches the checkpoint and VAE the way its dropdowns do.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from webui.engine import LATENT_MODES, EngineError
from webui.ui.params import FIELD_KEYS, INPAINT_KEYS, infotext_key, read_fields, written_keys

SAME_CHECKPOINT = "Use same checkpoint"
# keys that describe how an image was made but are no setting to restore
INFORMATIONAL = ("Version", "Lora hashes", "TI hashes", "Hypernet hashes", "RNG", "Init image hash", "User",
                 "Template", "Negative Template", "Hashes")
# keys recall reads (restored, or named in a note when they could not be)
HANDLED = {*FIELD_KEYS.values(), *INPAINT_KEYS.values(), "Face restoration", "Tiling", "Styles array", "Model",
           "Model hash", "VAE", "VAE hash"}


@dataclass
class Recall:
    tab: str  # "txt2img" or "img2img"
    fields: dict[str, Any]  # field key (GenerationPanel.fields) -> value
    checkpoint: str | None = None  # title to switch to; None: keep the active one
    vae: str | None = None  # VAE choice to select; None: keep the current one
    notes: list[str] = field(default_factory=list)  # values that could not be applied, each with why
    other_tab: list[str] = field(default_factory=list)  # keys only the other tab has
    unsupported: list[str] = field(default_factory=list)  # settings this app has no field for (extensions ...)
    informational: list[str] = field(default_factory=list)  # Version, Lora hashes ...

    def notice(self) -> tuple[str, str]:
        """(text, kind) for the status line; kind is "warn" when a setting was not restored."""
        other = "img2img" if self.tab == "txt2img" else "txt2img"
        parts = list(self.notes)
        if self.unsupported:
            parts.append(f"{', '.join(self.unsupported)} (no such setting here)")
        if self.other_tab:
            parts.append(f"{', '.join(self.other_tab)} ({other} only)")
        if self.informational:
            parts.append(f"{', '.join(self.informational)} (informational)")
        text = "Parameters restored."
        if self.checkpoint:
            text += f" Switching to {self.checkpoint}."
        if parts:
            text += " Not restored: " + "; ".join(parts) + "."
        return text, "warn" if self.notes or self.unsupported or self.other_tab else "ok"


def recall(text: str, engine, tab: str, targets: Iterable[str]) -> Recall:
    """What pasting `text` into the `tab` whose fields are `targets` restores, and what it cannot."""
    fields, notes = read_fields(text)
    written = written_keys(text)
    rec = Recall(tab, fields, notes=notes)
    _styles(rec, written, engine.styles)
    _checkpoint(rec, written, engine)
    _vae(rec, written, engine)
    _hires_names(rec, engine)
    _face_model(rec, written, engine)
    _keep_this_tab(rec, written, set(targets))
    _leftover(rec, written)
    return rec


# ---- styles -------------------------------------------------------------------------------------------------
def _styles(rec: Recall, written: dict, store) -> None:
    """A1111's "Apply if any": saved styles whose text the prompts end with (or wrap, for `{prompt}` styles) are
    taken out of the prompts and selected; a `Styles array` name not found that way is named in a note."""
    f = rec.fields
    names, f["prompt"], f["negative_prompt"] = extract_styles(f.get("prompt", ""), f.get("negative_prompt", ""),
                                                              store.list())
    f["styles"] = names
    listed = written.get("Styles array")
    if listed is None:
        return
    try:
        listed = [str(n) for n in json.loads(listed)]
    except (ValueError, TypeError):
        rec.notes.append(f"Styles array: {listed} (unreadable)")
        return
    missing = [n for n in listed if n not in names]
    if missing:
        rec.notes.append(f"Styles array: {', '.join(missing)} (not in styles.csv or changed since; "
                         f"the prompt keeps its text)")


def extract_styles(prompt: str, negative: str, styles) -> tuple[list[str], str, str]:
    """(style names in the order they apply, prompt and negative without them), as A1111 does."""
    found: list[str] = []
    left = list(styles)
    while True:
        for style in left:
            if texts := _unstyle_both(style, prompt, negative):
                break
        else:
            return found[::-1], prompt, negative
        prompt, negative = texts
        left.remove(style)
        found.append(style.name)


def _unstyle_both(style, prompt: str, negative: str) -> tuple[str, str] | None:
    if not style.prompt and not style.negative_prompt:
        return None
    p, n = _unstyle(style.prompt, prompt), _unstyle(style.negative_prompt, negative)
    return (p, n) if p is not None and n is not None else None


def _unstyle(style_text: str, text: str) -> str | None:
    """The text before the style was merged into it (webui.engine.prompts.styles.merge_prompts), or None."""
    text, style_text = text.strip(), style_text.strip()
    if "{prompt}" in style_text:
        before, _, after = style_text.partition("{prompt}")
        if text.startswith(before) and text.endswith(after) and len(text) >= len(before) + len(after):
            return text[len(before):len(text) - len(after)]
        return None
    if not text.endswith(style_text):
        return None
    return text[:len(text) - len(style_text)].removesuffix(", ")


# ---- checkpoint, VAE, hires names -----------------------------------------------------------------------------
def _find_checkpoint(engine, query: str | None):
    if not query:
        return None
    try:
        return engine.resolve_checkpoint(str(query))
    except EngineError:
        return None


def _checkpoint(rec: Recall, written: dict, engine) -> None:
    """`Model hash` first, then `Model`; a missing checkpoint is named and the active one kept."""
    short, name = written.get("Model hash"), written.get("Model")
    if not short and not name:
        return
    active = engine.active_model()
    found = _find_checkpoint(engine, short) or _find_checkpoint(engine, name)
    if found is None:
        label = " ".join(x for x in (name, f"[{short}]" if short else None) if x)
        rec.notes.append(f"Model: {label} (not found, keeping {active.title if active else 'none loaded'})")
        return
    if short and found.sha256 and not found.sha256.startswith(short.lower()):
        rec.notes.append(f"Model hash: {short} (differs: {found.title} was found by its name)")
    if active is None or found.title != active.title:
        rec.checkpoint = found.title


def _vae(rec: Recall, written: dict, engine) -> None:
    name = written.get("VAE")
    if not name:
        return
    try:
        choice = engine.check_vae(name)
    except EngineError:
        rec.notes.append(f"VAE: {name} (not found, keeping {engine.vae_choice})")
        return
    if choice != engine.vae_choice:
        rec.vae = choice


def _hires_names(rec: Recall, engine) -> None:
    f = rec.fields
    name = f.get("hr_checkpoint_name")
    if name and name != SAME_CHECKPOINT:
        found = _find_checkpoint(engine, name)
        if found is None:
            rec.notes.append(f"Hires checkpoint: {f.pop('hr_checkpoint_name')} (not found)")
        else:
            f["hr_checkpoint_name"] = found.title
    upscaler = f.get("hr_upscaler")
    if upscaler and upscaler not in (*LATENT_MODES, *engine.list_upscalers()):
        rec.notes.append(f"Hires upscaler: {f.pop('hr_upscaler')} (not installed)")


def _face_model(rec: Recall, written: dict, engine) -> None:
    kind, current = written.get("Face restoration"), engine.settings.face_restoration_model
    if kind and kind != current:
        rec.notes.append(f"Face restoration: {kind} (the Settings tab chooses the model: {current} now)")


# ---- what is left ----------------------------------------------------------------------------------------------
def _keep_this_tab(rec: Recall, written: dict, targets: set[str]) -> None:
    """Drop the fields the tab does not have; name those the infotext wrote."""
    for name in [k for k in rec.fields if k not in targets]:
        rec.fields.pop(name)
        raw, key = FIELD_KEYS.get(name) or INPAINT_KEYS.get(name), infotext_key(name)
        if raw in written and key not in rec.other_tab:
            rec.other_tab.append(key)


def _leftover(rec: Recall, written: dict) -> None:
    """Sort the keys recall does not read into informational ones and settings this app does not have."""
    seen: list[str] = []
    for key in written:
        name = key[:-2] if key.endswith(("-1", "-2")) else key
        # "ControlNet N" entries are restored by the ControlNet accordion (controlnet_panel.py)
        if key not in HANDLED and not key.startswith("ControlNet ") and name not in seen:
            seen.append(name)
    rec.informational = [k for k in seen if k in INFORMATIONAL]
    rec.unsupported = [k for k in seen if k not in INFORMATIONAL]
