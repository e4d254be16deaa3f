"""A ControlNet unit: sd-webui-controlnet's field names, values and defaults (its API "version 2").

The extension's enums are kept as their display strings ("Crop and Resize", "My prompt is more important"); the
API may send either those strings or their indexes, and the old aliases (``input_image``, ``guidance``,
``lowvram``, ``mask_image``). Checking here needs no model: names are resolved by the planner
(webui/engine/controlnet/plan.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

from webui.engine.errors import EngineError

RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
RESIZE_ALIASES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Outer Fit (Shrink to Fit)": "Resize and Fill",
                  "Scale to Fit (Inner Fit)": "Crop and Resize", "Envelope (Outer Fit)": "Resize and Fill",
                  "Just Resize (Latent upscale)": "Just Resize"}
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
HR_OPTIONS = ("Both", "Low res only", "High res only")
LEGACY_KEYS = {"input_image": "image", "guidance": "guidance_end", "lowvram": "low_vram", "mask_image": "mask"}
# the fields written to (and read from) the infotext, in the extension's order
INFOTEXT_FIELDS = ("module", "model", "weight", "resize_mode", "processor_res", "threshold_a", "threshold_b",
                   "guidance_start", "guidance_end", "pixel_perfect", "control_mode")


class UnitError(EngineError, ValueError):
    """A unit's field is wrong; the message names the unit and the field. (The planner turns it into a
    RequestError; this module cannot import webui.engine.requests, which refers to units.)"""


@dataclass
class ControlNetUnit:
    enabled: bool = True
    module: str = "none"
    model: str = "None"
    weight: float = 1.0
    image: Image.Image | None = None  # the control input (decoded by the API/UI layer)
    mask: Image.Image | None = None  # optional; only inpaint-style modules use it
    resize_mode: str = "Crop and Resize"
    low_vram: bool = False
    processor_res: int = -1  # -1: the module's default
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: str = "Balanced"
    hr_option: str = "Both"
    save_detected_map: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # fields of the extension this app does not use

    @property
    def active(self) -> bool:
        """Whether the unit changes the image at all (disabled, weight 0 and no model do not)."""
        return bool(self.enabled) and self.weight > 0 and self.model not in ("", "None", None)

    @property
    def resize_index(self) -> int:
        return RESIZE_MODES.index(self.resize_mode)


def _enum(value, choices: tuple[str, ...], name: str, aliases: dict | None = None) -> str:
    if isinstance(value, bool):
        raise UnitError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    if isinstance(value, int) and 0 <= value < len(choices):
        return choices[value]
    if isinstance(value, str):
        value = (aliases or {}).get(value, value)
        for c in choices:
            if value.lower() == c.lower():
                return c
    raise UnitError(f"{name} must be one of {', '.join(choices)} (got {value!r})")


def _number(value, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise UnitError(f"{name} must be a number from {lo:g} to {hi:g} (got {value!r})")
    return float(value)


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("True", "False", "true", "false"):
        return value.lower() == "true"
    raise UnitError(f"{name} must be true or false (got {value!r})")


def check_unit(unit: ControlNetUnit, index: int) -> ControlNetUnit:
    """Normalise a unit's enum values and check its numbers; UnitError names ``ControlNet unit {index}``."""
    where = f"ControlNet unit {index}"
    try:
        unit.enabled = _flag(unit.enabled, "enabled")
        unit.pixel_perfect = _flag(unit.pixel_perfect, "pixel_perfect")
        unit.resize_mode = _enum(unit.resize_mode, RESIZE_MODES, "resize_mode", RESIZE_ALIASES)
        unit.control_mode = _enum(unit.control_mode, CONTROL_MODES, "control_mode")
        unit.hr_option = _enum(unit.hr_option, HR_OPTIONS, "hr_option")
        unit.weight = _number(unit.weight, "weight", 0.0, 2.0)
        unit.guidance_start = _number(unit.guidance_start, "guidance_start", 0.0, 1.0)
        unit.guidance_end = _number(unit.guidance_end, "guidance_end", 0.0, 1.0)
        if unit.guidance_start > unit.guidance_end:
            raise UnitError(f"guidance_start ({unit.guidance_start}) must not be after guidance_end "
                            f"({unit.guidance_end})")
        unit.processor_res = int(_number(unit.processor_res, "processor_res", -1, 4096))
        unit.threshold_a = _number(unit.threshold_a, "threshold_a", -1e6, 1e6)
        unit.threshold_b = _number(unit.threshold_b, "threshold_b", -1e6, 1e6)
        for name in ("module", "model"):
            value = getattr(unit, name)
            if value is None:
                setattr(unit, name, "none" if name == "module" else "None")
            elif not isinstance(value, str) or len(value) > 1000:
                raise UnitError(f"{name} must be a name (got {value!r})")
    except UnitError as exc:
        raise UnitError(f"{where}: {exc}") from None
    return unit


def unit_from_dict(values: dict, index: int, decode_image=None) -> ControlNetUnit:
    """A unit from one of the extension's API dicts. ``decode_image(value, name)`` turns a base64 string (or the
    ``{"image": ..., "mask": ...}`` form's parts) into a PIL image; unknown keys are kept in ``extra``."""
    if not isinstance(values, dict):
        raise UnitError(f"ControlNet unit {index}: expected an object with the unit's fields (got "
                        f"{type(values).__name__})")
    values = dict(values)
    for old, new in LEGACY_KEYS.items():
        if old in values:
            if new in values and values[new] not in (None, ""):
                raise UnitError(f"ControlNet unit {index}: both {old!r} and {new!r} given")
            values[new] = values.pop(old)
    image, mask = values.pop("image", None), values.pop("mask", None)
    if isinstance(image, (list, tuple)) and image:
        image = image[0] if isinstance(image[0], dict) else {"image": image[0], "mask": image[1] if len(image) > 1 else None}
    if isinstance(image, dict):
        image, mask = image.get("image"), image.get("mask", mask)
    names = {f.name for f in fields(ControlNetUnit)} - {"image", "mask", "extra"}
    unit = ControlNetUnit(**{k: v for k, v in values.items() if k in names},
                          extra={k: v for k, v in values.items() if k not in names})
    if decode_image is not None:
        unit.image = decode_image(image, f"ControlNet unit {index} image") if image else None
        unit.mask = decode_image(mask, f"ControlNet unit {index} mask") if mask else None
    return check_unit(unit, index)


# ---- infotext (the extension's "ControlNet 0: "Module: canny, Model: ..., Control Mode: Balanced"") ----

def _display(name: str) -> str:
    return " ".join(w.capitalize() for w in name.split("_"))


def _value_text(value) -> str:
    return str(value)


def infotext_value(unit: ControlNetUnit, processor_res: int, threshold_a: float, threshold_b: float) -> str:
    """One unit's infotext value, the settings it ran with (defaults filled in, as the extension writes them)."""
    values = {"module": unit.module, "model": unit.model, "weight": unit.weight, "resize_mode": unit.resize_mode,
                  "processor_res": processor_res, "threshold_a": threshold_a, "threshold_b": threshold_b,
                  "guidance_start": unit.guidance_start, "guidance_end": unit.guidance_end,
                  "pixel_perfect": unit.pixel_perfect, "control_mode": unit.control_mode}
    return ", ".join(f"{_display(k)}: {_value_text(values[k]).replace(',', ' ').replace(':', ' ')}"
                     for k in INFOTEXT_FIELDS)


def _parse_value(text: str):
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_infotext_value(text: str) -> dict:
    """The unit fields of one "ControlNet N" infotext value (enabled, as the extension reads it back)."""
    out: dict[str, Any] = {"enabled": True}
    for item in text.split(","):
        if ": " not in item:
            continue
        key, value = item.strip().split(": ", 1)
        name = "_".join(w.lower() for w in key.split(" "))
        if name in INFOTEXT_FIELDS:
            out[name] = _parse_value(value.strip())
    for name in ("module", "model"):
        if name in out:
            out[name] = str(out[name])
    return out


def units_from_params(params: dict) -> list[dict]:
    """The units of a parsed infotext: ``{"ControlNet 0": "...", "ControlNet 1": "..."}`` -> unit dicts in order."""
    found = []
    for key, value in params.items():
        if isinstance(key, str) and key.startswith("ControlNet ") and key[11:].isdigit() and isinstance(value, str):
            found.append((int(key[11:]), parse_infotext_value(value)))
    return [unit for _, unit in sorted(found, key=lambda kv: kv[0])]


# names exported by webui.engine
controlnet_unit_from_dict = unit_from_dict
controlnet_units_from_params = units_from_params
CONTROLNET_RESIZE_MODES = RESIZE_MODES
