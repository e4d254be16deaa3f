"""What a script is (A1111's Script dropdown; the API's script_name + script_args), and finding one.

A script is any object with:

    title: str                       # "X/Y/Z plot"; the API matches it case-insensitively
    modes: tuple[str, ...]           # "txt2img" and/or "img2img"
    args(ctx, mode) -> list[ScriptArg]           # A1111's argument list, in its order (/sdapi/v1/script-info, UI)
    check(ctx, request, args) -> prepared        # optional: bad arguments fail here, before the queue
    run(ctx, request, prepared) -> GenerationResult   # in the worker; ctx.generate() runs sub-generations

Built-in scripts and extension scripts register the same way: a "script" hook (`ExtensionContext.script(obj)`).
`ctx` is a ScriptContext (webui/engine/scripts/context.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from webui.engine.requests import RequestError

MODES = ("txt2img", "img2img")


class ScriptNotFound(RequestError):
    """A script_name that names no script of that tab (A1111 answers 422)."""


@dataclass(frozen=True)
class ScriptArg:
    """One of a script's arguments, as A1111's /sdapi/v1/script-info describes a UI component."""
    label: str
    value: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: list | None = None
    kind: str = "textbox"  # how a UI shows it: textbox, textarea, number, slider, checkbox, dropdown, multiselect,
    #                        radio, html (A1111's info text: an argument nobody sets)

    def as_api(self) -> dict:
        return {"label": self.label, "value": self.value, "minimum": self.minimum, "maximum": self.maximum,
                "step": self.step, "choices": self.choices}


class Script:
    """Base class for scripts (optional: any object with these attributes works)."""
    title = ""
    modes: tuple[str, ...] = MODES

    def args(self, ctx, mode: str) -> list[ScriptArg]:
        return []

    def check(self, ctx, request, args: list) -> Any:
        return args

    def run(self, ctx, request, args):
        raise NotImplementedError


def scripts_for(hooks, mode: str) -> list:
    return [s for s in hooks.scripts() if mode in getattr(s, "modes", MODES)]


def find_script(hooks, name: str, mode: str):
    """The script of `mode` titled `name` (case-insensitive); ScriptNotFound naming the ones there are."""
    wanted = str(name).strip().lower()
    for script in scripts_for(hooks, mode):
        if script.title.lower() == wanted:
            return script
    titles = ", ".join(s.title.lower() for s in scripts_for(hooks, mode)) or "none"
    raise ScriptNotFound(f"script_name: script {name!r} not found for {mode} (scripts: {titles})")


class ArgReader:
    """A script's argument values as A1111 passes them (positional, in the order of `args()`): missing ones take
    the default, and each is checked for its type, with a RequestError naming the script and the argument."""

    def __init__(self, title: str, specs: list[ScriptArg], values: list):
        if not isinstance(values, (list, tuple)):
            raise RequestError(f"{title}: script_args must be a list (got {type(values).__name__})")
        self.title, self.specs, self.values = title, specs, list(values)

    def raw(self, i: int):
        return self.values[i] if i < len(self.values) and self.values[i] is not None else self.specs[i].value

    def fail(self, i: int, expected: str):
        raise RequestError(f"{self.title}: script_args[{i}] ({self.specs[i].label}) must be {expected} "
                           f"(got {_short(self.raw(i))})")

    def bool(self, i: int) -> bool:
        v = self.raw(i)
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        self.fail(i, "true or false")

    def number(self, i: int, lo: float = -math.inf, hi: float = math.inf) -> float:
        v = self.raw(i)
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            self.fail(i, f"a number from {lo:g} to {hi:g}")
        return float(v)

    def int(self, i: int, lo: int, hi: int) -> int:
        v = self.number(i, lo, hi)
        if v != int(v):
            self.fail(i, f"a whole number from {lo} to {hi}")
        return int(v)

    def text(self, i: int, max_chars: int = 1_000_000) -> str:
        v = self.raw(i)
        if v is None:
            return ""
        if not isinstance(v, (str, int, float)) or isinstance(v, bool) or len(str(v)) > max_chars:
            self.fail(i, f"text of at most {max_chars} characters")
        return str(v)

    def texts(self, i: int) -> list[str]:
        """A multiselect's values (a list of text; a single text is one value)."""
        v = self.raw(i)
        if v is None or v == "":
            return []
        if isinstance(v, str):
            return [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, (str, int, float)) for x in v):
            self.fail(i, "a list of values")
        return [str(x) for x in v]

    def choice(self, i: int, choices: list[str]) -> str:
        v = self.raw(i)
        for c in choices:
            if isinstance(v, str) and v.strip().lower() == c.lower():
                return c
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(choices):
            return choices[v]
        self.fail(i, "one of " + ", ".join(choices))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
