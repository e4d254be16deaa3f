"""Infotext <-> UI fields, without gradio: what ↙, "Send to txt2img/img2img" and PNG Info fill in.

`read_fields` turns an infotext into field values plus notes on what it could not apply; the checkpoint, VAE and
styles need the engine and are added by `webui.ui.recall`.
"""
from __future__ import annotations

from typing import Any

from webui.engine import MASKED_CONTENT
from webui.engine.infotext import parse_infotext, typed_params
from webui.engine.samplers import SamplerError, resolve, sampler_names

SAME_SAMPLER, SAME_SCHEDULER = "Use same sampler", "Use same scheduler"

# field key -> infotext key (after parse_infotext); sizes come from Size-1 / Size-2
FIELD_KEYS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative prompt",
    "steps": "Steps",
    "sampler_name": "Sampler",
    "scheduler": "Schedule type",
    "cfg_scale": "CFG scale",
    "seed": "Seed",
    "width": "Size-1",
    "height": "Size-2",
    "subseed": "Variation seed",
    "subseed_strength": "Variation seed strength",
    "clip_skip": "Clip skip",
    "denoising_strength": "Denoising strength",
    "hr_scale": "Hires upscale",
    "hr_resize_x": "Hires resize-1",
    "hr_resize_y": "Hires resize-2",
    "hr_second_pass_steps": "Hires steps",
    "hr_upscaler": "Hires upscaler",
    "hr_sampler_name": "Hires sampler",
    "hr_scheduler": "Hires schedule type",
    "hr_prompt": "Hires prompt",
    "hr_negative_prompt": "Hires negative prompt",
    "hr_checkpoint_name": "Hires checkpoint",
}
# img2img's inpaint controls: only when the infotext writes them (their parse defaults would reset the controls)
INPAINT_KEYS = {
    "mask_blur": "Mask blur",
    "mask_mode": "Mask mode",
    "masked_content": "Masked content",
    "inpaint_area": "Inpaint area",
    "inpaint_padding": "Masked area padding",
}
CHOICES = {
    "mask_mode": ("Inpaint masked", "Inpaint not masked"),
    "masked_content": MASKED_CONTENT,
    "inpaint_area": ("Whole picture", "Only masked"),
}
TEXT_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")  # pasted even when empty
INT_FIELDS = ("steps", "seed", "width", "height", "subseed", "clip_skip", "hr_resize_x", "hr_resize_y",
              "hr_second_pass_steps", "mask_blur", "inpaint_padding")
FLOAT_FIELDS = ("cfg_scale", "subseed_strength", "denoising_strength", "hr_scale")


def has_parameters(text: str | None) -> bool:
    """Whether the text ends in an infotext parameters line (not just a prompt)."""
    return bool(text and text.strip()) and len(parse_infotext(text, defaults=False)) > 2


def written_keys(text: str | None) -> dict[str, str]:
    """The infotext's own keys and values (no defaults filled in), prompts first."""
    return parse_infotext(text, defaults=False) if text and text.strip() else {}


def read_fields(text: str | None) -> tuple[dict[str, Any], list[str]]:
    """The UI field values an infotext sets, and notes on values it could not apply ("Schedule type: Karras (not
    available for Euler a, Automatic used)"). Keys missing from the text are left out, except that a missing
    variation seed resets the variation strength to 0, a missing clip skip means 1, and hires fix, tiling and
    restore faces are off unless written (as A1111)."""
    if not text or not text.strip():
        return {}, []
    parsed = typed_params(parse_infotext(text))
    written = typed_params(parse_infotext(text, defaults=False))  # the defaults A1111 fills in include Hires keys
    out: dict[str, Any] = {}
    for field, key in FIELD_KEYS.items():
        if parsed.get(key) not in (None, "") or (field in TEXT_FIELDS and key in parsed):
            out[field] = parsed[key]
    for field, key in INPAINT_KEYS.items():
        if written.get(key) not in (None, ""):
            out[field] = written[key]
    notes = _check_types(out) + _check_choices(out)
    notes += _samplers(out, "sampler_name", "scheduler") + _samplers(out, "hr_sampler_name", "hr_scheduler")
    out.setdefault("subseed_strength", 0.0)
    out["enable_hr"] = any(key.startswith("Hires ") for key in written)  # as A1111: no Hires keys, hires off
    out["tiling"] = parsed.get("Tiling") is True
    out["restore_faces"] = bool(written.get("Face restoration"))
    return out, notes


def fields_from_infotext(text: str | None) -> dict[str, Any]:
    """`read_fields` without the notes."""
    return read_fields(text)[0]


def _check_types(out: dict) -> list[str]:
    """Drop (and name) numbers that do not parse."""
    notes = []
    for k in INT_FIELDS + FLOAT_FIELDS:
        if k not in out:
            continue
        value = out[k]
        ok = isinstance(value, int) and not isinstance(value, bool)
        if k in FLOAT_FIELDS:
            try:
                out[k], ok = float(value), True
            except (TypeError, ValueError):
                ok = False
        if not ok:
            notes.append(f"{_key_name(k)}: {out.pop(k)} (not a number)")
    return notes


def _check_choices(out: dict) -> list[str]:
    return [f"{_key_name(k)}: {out.pop(k)} (unknown choice)" for k, options in CHOICES.items()
            if k in out and out[k] not in options]


def _samplers(out: dict, sampler_field: str, schedule_field: str) -> list[str]:
    """Check a pasted sampler + schedule pair. An unknown schedule keeps the sampler (with Automatic); an unknown
    sampler sets neither. Returns the notes."""
    sampler = out.get(sampler_field)
    if not sampler or sampler == SAME_SAMPLER:
        return []
    schedule = out.get(schedule_field) or "Automatic"
    keep = schedule == SAME_SCHEDULER
    try:
        choice = resolve(str(sampler), "Automatic" if keep else str(schedule))
        out[sampler_field], out[schedule_field] = choice.sampler.name, schedule if keep else choice.requested_schedule
        return []
    except SamplerError:
        pass
    try:
        choice = resolve(str(sampler), "Automatic")
    except SamplerError as exc:
        out.pop(sampler_field)
        out.pop(schedule_field, None)
        known = str(sampler).lower() in (n.lower() for n in sampler_names())  # e.g. it needs a missing package
        why = str(exc) if known else "not available here"
        return [f"{FIELD_KEYS[sampler_field]}: {sampler} ({why})"]
    out[sampler_field], out[schedule_field] = choice.sampler.name, "Automatic"
    return [f"{FIELD_KEYS[schedule_field]}: {schedule} (not available for {choice.sampler.name}, Automatic used)"]


def _key_name(field: str) -> str:
    key = FIELD_KEYS.get(field) or INPAINT_KEYS[field]
    return key[:-2] if key.endswith(("-1", "-2")) else key


def infotext_key(field: str) -> str | None:
    """The infotext key a field is read from ("Size" for width and height), None for derived fields."""
    return _key_name(field) if field in FIELD_KEYS or field in INPAINT_KEYS else None


def parameter_rows(text: str | None) -> list[list[str]]:
    """(key, value) rows for a table, in the infotext's own order, prompts first: every key it writes."""
    if not text:
        return []
    parsed = parse_infotext(text, defaults=False, split_sampler=False)
    rows = [["Prompt", parsed.pop("Prompt", "")], ["Negative prompt", parsed.pop("Negative prompt", "")]]
    merged: dict[str, str] = {}
    for k, v in parsed.items():
        if k.endswith("-1") and k[:-2] + "-2" in parsed:
            merged[k[:-2]] = f"{v}x{parsed[k[:-2] + '-2']}"
        elif k.endswith("-2") and k[:-2] + "-1" in parsed:
            continue
        else:
            merged[k] = v
    rows += [[k, str(v)] for k, v in merged.items()]
    return rows
