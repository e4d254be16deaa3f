"""The X/Y/Z plot's value syntax, as A1111's:

    1, 2, 5                 a comma list (CSV: "a, b", "c" keeps the comma inside quotes)
    1-5                     a range: 1, 2, 3, 4, 5
    1-10 (+2)               with a step: 1, 3, 5, 7, 9   (a negative step counts down: 10-1 (-3))
    10-20 [5]               that many values, evenly spaced: 10, 12, 15, 17, 20
    0.5-1.5 (+0.25)         the same for decimal axes (CFG Scale, Denoising ...)

A range may make at most MAX_VALUES values (a client cannot make the server build a list of a billion).
"""
from __future__ import annotations

import csv
import io
import re

from webui.engine.requests import RequestError

MAX_VALUES = 1000

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
RANGE_STEP = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(\s*([+-]?\d+)\s*\))?\s*")
RANGE_COUNT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[\s*(\d+)\s*]\s*")
FLOAT_RANGE_STEP = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(\s*([+-]?\d+(?:\.\d*)?)\s*\))?\s*")
FLOAT_RANGE_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[\s*(\d+)\s*]\s*")


def split_values(text: str) -> list[str]:
    """A comma-separated line (CSV quoting), each value stripped, empty ones dropped. Several lines are read as
    one list."""
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    return [v.strip() for row in rows for v in row if v.strip()]


def _num(text: str) -> str:
    return text.replace(" ", "")


def _bounded(count: int, what: str) -> None:
    if count > MAX_VALUES:
        raise RequestError(f"{what} makes {count} values (at most {MAX_VALUES})")


def int_values(values: list[str]) -> list[int]:
    return _checked(_int_values, values)


def float_values(values: list[str]) -> list[float]:
    return _checked(_float_values, values)


def _checked(parse, values: list[str]) -> list:
    """At most MAX_VALUES in all (checked before each range is built), and a value too big or too long for a
    number is a RequestError, not a crash."""
    _bounded(len(values), "the list")
    try:
        return parse(values)
    except (ValueError, OverflowError) as exc:
        raise RequestError(f"a value cannot be read as a number ({exc})") from None


def _int_values(values: list[str]) -> list[int]:
    out: list[int] = []
    for v in values:
        _bounded(len(out), "the values")
        if m := RANGE_COUNT.fullmatch(v):
            start, end, count = int(_num(m[1])), int(_num(m[2])), int(m[3])
            _bounded(count, repr(v))
            out += [int(start + (end - start) * i / (count - 1)) if count > 1 else start for i in range(count)]
        elif m := RANGE_STEP.fullmatch(v):
            start, end, step = int(_num(m[1])), int(_num(m[2])), int(m[3] or (1 if int(_num(m[2])) >= int(_num(m[1])) else -1))
            out += _stepped(start, end, step, v)
        else:
            out.append(_int(v))
    _bounded(len(out), "the values")
    return out


def _stepped(start: int, end: int, step: int, text: str) -> list[int]:
    if step == 0:
        raise RequestError(f"{text!r}: a step of 0")
    stop = end + (1 if step > 0 else -1)
    _bounded(max(0, (stop - start) // step), repr(text))
    return list(range(start, stop, step))


def _float_values(values: list[str]) -> list[float]:
    out: list[float] = []
    for v in values:
        _bounded(len(out), "the values")
        if m := FLOAT_RANGE_COUNT.fullmatch(v):
            start, end, count = float(_num(m[1])), float(_num(m[2])), int(m[3])
            _bounded(count, repr(v))
            out += [_round(start + (end - start) * i / (count - 1)) if count > 1 else start for i in range(count)]
        elif m := FLOAT_RANGE_STEP.fullmatch(v):
            start, end = float(_num(m[1])), float(_num(m[2]))
            step = float(m[3]) if m[3] else (1.0 if end >= start else -1.0)
            out += _float_stepped(start, end, step, v)
        else:
            out.append(_float(v))
    _bounded(len(out), "the values")
    return out


def _float_stepped(start: float, end: float, step: float, text: str) -> list[float]:
    if step == 0:
        raise RequestError(f"{text!r}: a step of 0")
    count = int((end - start) / step + 1e-9) + 1
    _bounded(count, repr(text))
    return [_round(start + i * step) for i in range(max(0, count))]


def _round(x: float) -> float:
    return round(x, 8)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise RequestError(f"{text!r} is not a whole number or a range (like 1-5, 1-10 (+2), 10-20 [5])") from None
        if f != int(f):
            raise RequestError(f"{text!r} is not a whole number") from None
        return int(f)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RequestError(f"{text!r} is not a number or a range (like 1-5, 1-2 (+0.5), 1-10 [4])") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise RequestError(f"{text!r} is not a finite number")
    return value
