"""A1111-compatible "infotext": the generation-parameters text stored in images.

The format (AUTOMATIC1111 web UI v1.10.1) is::

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>   (omitted when empty)
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768, ...

The last line is ``", ".join(k if k == v else f"{k}: {quote(v)}")``; values that
contain ``,`` ``:`` or a newline are written as JSON strings.

This module builds and parses that text; ``webui.engine.image_files`` embeds it in
and reads it from image files. Pure Python: no Pillow, no torch, no gradio.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PARAM_ORDER",
    "TRAILING_PARAM_ORDER",
    "PARSE_DEFAULTS",
    "SCHEDULER_NAMES",
    "quote",
    "unquote",
    "format_params_line",
    "build_infotext",
    "parse_infotext",
    "param_pairs",
    "split_sampler_scheduler",
    "typed_params",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

#: Fixed position of the well-known keys on the params line (A1111 create_infotext order).
PARAM_ORDER: tuple[str, ...] = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "Tiling",
)

#: Keys written after all extra params, in this order.
TRAILING_PARAM_ORDER: tuple[str, ...] = ("Version", "User")

NEGATIVE_PROMPT_PREFIX = "Negative prompt:"

# The params line is read by ``param_pairs``, which gives what A1111's
# ``re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', line)``
# gives, in linear time: findall retries that pattern at every character of a long
# run of words without a colon, which is quadratic (a 128 KB line took 86 s).
_RE_KEY = re.compile(r"\w[\w \-/]*")
_RE_QUOTED_VALUE = re.compile(r'\s*("(?:\\.|[^\\"])+")(?:,|$)')
_RE_PLAIN_VALUE = re.compile(r"\s*([^,]*),?")
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")

#: Minimum number of ``key: value`` pairs for the last line to count as params.
MIN_PARAM_PAIRS = 3

#: A last line longer than this is not read as params (it stays prompt text).
#: A1111 has no limit; real params lines are well under 4 KB, and the cap bounds
#: the work an untrusted image or API field can cause.
MAX_PARAMS_LINE_CHARS = 65536

#: Defaults A1111's parse_generation_parameters fills in for missing keys.
#: A1111 uses ints/bools for a few of these (0, 32, False); here all are strings.
PARSE_DEFAULTS: Mapping[str, str] = {
    "Clip skip": "1",
    "Hires resize-1": "0",
    "Hires resize-2": "0",
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": "32",
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": "0",
    "Schedule min sigma": "0",
    "Schedule rho": "0",
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
    "Refiner switch by sampling steps": "False",
}

#: A1111 v1.10.1 schedulers, in registry order: (name, label, aliases).
SCHEDULER_NAMES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("automatic", "Automatic", ()),
    ("uniform", "Uniform", ()),
    ("karras", "Karras", ()),
    ("exponential", "Exponential", ()),
    ("polyexponential", "Polyexponential", ()),
    ("sgm_uniform", "SGM Uniform", ("SGMUniform",)),
    ("kl_optimal", "KL Optimal", ()),
    ("align_your_steps", "Align Your Steps", ()),
    ("simple", "Simple", ()),
    ("normal", "Normal", ()),
    ("ddim", "DDIM", ()),
    ("beta", "Beta", ()),
)

INT_KEYS: frozenset[str] = frozenset({
    "Steps", "Seed", "Size-1", "Size-2", "Clip skip", "Variation seed",
    "Seed resize from-1", "Seed resize from-2", "Hires steps", "Hires resize-1",
    "Hires resize-2", "First pass size-1", "First pass size-2", "ENSD", "Mask blur",
    "Masked area padding",
})
FLOAT_KEYS: frozenset[str] = frozenset({
    "CFG scale", "Image CFG scale", "Denoising strength", "Variation seed strength",
    "Hires upscale", "Conditional mask weight", "Token merging ratio",
    "Token merging ratio hr", "Eta", "Schedule max sigma", "Schedule min sigma",
    "Schedule rho",
})
BOOL_KEYS: frozenset[str] = frozenset({
    "Tiling", "Refiner switch by sampling steps", "Cache FP16 weight for LoRA",
})

# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def quote(value: object) -> str:
    """Format one param value the way A1111's ``infotext_utils.quote`` does.

    A value containing ``,`` ``:`` or a newline becomes a JSON string
    (``ensure_ascii=False``). Additionally (a small, A1111-reader-compatible
    deviation) a value starting with ``"`` is JSON-quoted, since A1111 would
    otherwise JSON-decode it on read and lose its quotes.
    """
    text = str(value)
    if "," in text or ":" in text or "\n" in text or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """JSON-decode ``text`` if it is a quoted JSON string, else return it unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return decoded if isinstance(decoded, str) else text


def _as_value(value: object) -> object:
    # Convenience: (w, h) pairs for size-like keys are written as "WxH".
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return f"{value[0]}x{value[1]}"
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _omitted(key: str, value: object) -> bool:
    if value is None:
        return True
    if key == "Clip skip":
        number = _number(value)
        return number is not None and number <= 1
    if key == "RNG":
        return str(value) == "GPU"
    return False


def _ordered_params(params: Mapping[str, object]) -> list[tuple[str, object]]:
    known = set(PARAM_ORDER) | set(TRAILING_PARAM_ORDER)
    ordered = [(k, params[k]) for k in PARAM_ORDER if k in params]
    ordered += [(k, v) for k, v in params.items() if k not in known]
    ordered += [(k, params[k]) for k in TRAILING_PARAM_ORDER if k in params]
    return ordered


def format_params_line(params: Mapping[str, object]) -> str:
    """The last infotext line: known keys in A1111 order, then extras, then Version/User.

    ``None`` values are skipped, ``Clip skip`` is skipped when <= 1 and ``RNG``
    when it is ``"GPU"``. A value equal to its key is written as the bare key.
    """
    parts = []
    for key, value in _ordered_params(params):
        value = _as_value(value)
        if _omitted(key, value):
            continue
        if isinstance(value, str) and value == key:
            parts.append(key)
        else:
            parts.append(f"{key}: {quote(value)}")
    return ", ".join(parts)


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """Build the full A1111 infotext (prompt, optional negative prompt line, params line)."""
    prompt = prompt or ""
    negative_prompt = negative_prompt or ""
    negative_text = f"\n{NEGATIVE_PROMPT_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative_text}\n{format_params_line(params)}".strip()


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def split_sampler_scheduler(sampler: str | None, schedule_type: str | None = None) -> tuple[str | None, str | None]:
    """Split an old combined sampler name such as ``"DPM++ 2M Karras"``.

    Mirrors the name handling of A1111's ``sd_samplers.get_sampler_and_scheduler``:
    a trailing scheduler label, name or alias (after a space) is cut off and wins
    over ``schedule_type``. Returns ``(sampler, schedule_type)``; the schedule type
    is the scheduler's label. Unlike A1111 it has no sampler table, so it neither
    falls back to a default sampler nor turns a sampler's own default scheduler
    into ``"Automatic"``.
    """
    if not sampler:
        return sampler, schedule_type
    name = sampler
    found = schedule_type
    for sched_name, label, aliases in SCHEDULER_NAMES:
        for option in (label, sched_name, *aliases):
            if name.endswith(" " + option):
                found = label
                name = name[: -(len(option) + 1)]
                break
    return name, found


def _old_hires_first_pass(width: int, height: int) -> tuple[int, int]:
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _restore_old_hires_fix(res: dict[str, str]) -> None:
    """Old infotexts gave "First pass size"; convert to Size + Hires resize (A1111 default options)."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        fw, fh = int(first_w), int(first_h)
        width, height = int(res.get("Size-1", 512)), int(res.get("Size-2", 512))
    except ValueError:
        return
    if fw == 0 or fh == 0:
        if width <= 0 or height <= 0:
            return
        fw, fh = _old_hires_first_pass(width, height)
    res["Size-1"], res["Size-2"] = str(fw), str(fh)
    res["Hires resize-1"], res["Hires resize-2"] = str(width), str(height)


def param_pairs(line: str) -> list[tuple[str, str]]:
    """The ``(key, raw value)`` pairs of a params line, as A1111's regex finds them.

    Keys are a word character then word characters, spaces, ``-`` or ``/``, ended
    by ``:``; a value is a JSON string followed by ``,`` or the end, else the text
    up to the next ``,``. A key-like run that does not end in ``:`` is skipped
    whole (the old regex retried it from each of its characters).
    """
    pairs: list[tuple[str, str]] = []
    pos = 0
    while (key := _RE_KEY.search(line, pos)) is not None:
        pos = key.end()
        if pos - key.start() < 2 or not line.startswith(":", pos):
            continue
        value = _RE_QUOTED_VALUE.match(line, pos + 1) or _RE_PLAIN_VALUE.match(line, pos + 1)
        pairs.append((key.group(), value.group(1)))
        pos = value.end()
    return pairs


def parse_infotext(text: str, *, defaults: bool = True, split_sampler: bool = True) -> dict[str, str]:
    """Parse an infotext like A1111's ``parse_generation_parameters``.

    Returns a dict with ``Prompt``, ``Negative prompt`` and every param; values are
    strings, ``WxH`` values are split into ``<key>-1`` / ``<key>-2``. With
    ``defaults`` the A1111 defaults for missing keys are filled in (see
    ``PARSE_DEFAULTS``) and a ``Hypernet`` param is appended to the prompt. With
    ``split_sampler`` an old combined sampler name ("DPM++ 2M Karras") is split
    into ``Sampler`` + ``Schedule type`` (A1111 does that when pasting); the same
    for ``Hires sampler`` / ``Hires schedule type``.
    """
    res: dict[str, str] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = (text or "").strip().split("\n")
    pairs = param_pairs(lastline) if len(lastline) <= MAX_PARAMS_LINE_CHARS else []
    if len(pairs) < MIN_PARAM_PAIRS:
        lines.append(lastline)
        pairs = []

    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PROMPT_PREFIX):
            done_with_prompt = True
            line = line[len(NEGATIVE_PROMPT_PREFIX):].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    for key, value in pairs:
        if not value:  # A1111 fails on v[0] here and drops the key
            continue
        if value[0] == '"' and value[-1] == '"':
            value = unquote(value)
        match = RE_IMAGESIZE.match(value)
        if match is not None:
            res[f"{key}-1"] = match.group(1)
            res[f"{key}-2"] = match.group(2)
        else:
            res[key] = value

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    if split_sampler:
        if "Sampler" in res:
            sampler, schedule = split_sampler_scheduler(res["Sampler"], res.get("Schedule type"))
            res["Sampler"] = sampler
            if schedule is not None:
                res["Schedule type"] = schedule
        hires_sampler = res.get("Hires sampler")
        if hires_sampler and hires_sampler != "Use same sampler":
            sampler, schedule = split_sampler_scheduler(hires_sampler, res.get("Hires schedule type"))
            res["Hires sampler"] = sampler
            if schedule is not None:
                res["Hires schedule type"] = schedule

    if defaults:
        hypernet = res.get("Hypernet")
        if hypernet is not None:
            res["Prompt"] += f"<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
        for key, value in PARSE_DEFAULTS.items():
            if key == "Hires resize-2":
                continue  # set together with Hires resize-1, as A1111 does
            if key not in res:
                res[key] = value
                if key == "Hires resize-1":
                    res["Hires resize-2"] = PARSE_DEFAULTS["Hires resize-2"]
        _restore_old_hires_fix(res)
        if "Cache FP16 weight for LoRA" not in res and res.get("FP8 weight") != "Disable":
            res["Cache FP16 weight for LoRA"] = "False"

    return res


def _to_int(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        pass
    try:
        number = float(str(value).strip())
    except ValueError:
        return value
    return int(number) if number.is_integer() else value


def _to_float(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return value


def _to_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    return value


def typed_params(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``parsed`` with known numeric/boolean keys converted.

    Int keys (Steps, Seed, Size-1/2, Clip skip, Variation seed, ...) become
    ``int``; float keys (CFG scale, Denoising strength, Variation seed strength,
    ...) become ``float``; Tiling etc. become ``bool``. Values that do not
    convert are left as they are.
    """
    result = dict(parsed)
    for key, value in parsed.items():
        if key in INT_KEYS:
            result[key] = _to_int(value)
        elif key in FLOAT_KEYS:
            result[key] = _to_float(value)
        elif key in BOOL_KEYS:
            result[key] = _to_bool(value)
    return result
