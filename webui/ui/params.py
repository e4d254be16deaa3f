"""Infotext <-> UI fields, without gradio: what "Send to txt2img/img2img" and PNG Info fill in."""
from __future__ import annotations

from typing import Any

from webui.engine.infotext import parse_infotext, typed_params
from webui.engine.samplers import SamplerError, resolve

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


def fields_from_infotext(text: str | None) -> dict[str, Any]:
    """The UI field values an infotext sets. Keys missing from the text are left out, except that a
    missing variation seed resets the variation strength to 0 and a missing clip skip means 1 (as A1111)."""
    if not text or not text.strip():
        return {}
    parsed = typed_params(parse_infotext(text))
    out: dict[str, Any] = {}
    for field, key in FIELD_KEYS.items():
        if key in parsed and parsed[key] not in (None, ""):
            out[field] = parsed[key]
    if "sampler_name" in out:
        try:
            choice = resolve(str(out["sampler_name"]), str(out.get("scheduler") or "Automatic"))
            out["sampler_name"] = choice.sampler.name
            out["scheduler"] = choice.requested_schedule
        except SamplerError:  # unknown sampler: leave the fields as they are
            out.pop("sampler_name")
            out.pop("scheduler", None)
    if "subseed_strength" not in out:
        out["subseed_strength"] = 0.0
    written = parse_infotext(text, defaults=False)  # the defaults A1111 fills in include Hires keys
    out["enable_hr"] = any(key.startswith("Hires ") for key in written)  # as A1111: no Hires keys, hires off
    out["tiling"] = str(parsed.get("Tiling", "")).lower() == "true"
    out["restore_faces"] = bool(written.get("Face restoration"))
    for k in ("steps", "seed", "width", "height", "subseed", "clip_skip", "hr_resize_x", "hr_resize_y",
              "hr_second_pass_steps"):
        if k in out and not isinstance(out[k], int):
            out.pop(k)
    for k in ("cfg_scale", "subseed_strength", "denoising_strength", "hr_scale"):
        if k in out:
            try:
                out[k] = float(out[k])
            except (TypeError, ValueError):
                out.pop(k)
    return out


def parameter_rows(text: str | None) -> list[list[str]]:
    """(key, value) rows for a table, in the infotext's own order, prompts first."""
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
