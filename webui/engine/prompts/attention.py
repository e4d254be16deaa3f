"""Emphasis syntax of A1111 prompts: ``(x)``, ``[x]``, ``(x:w)``, escapes and ``BREAK``.

``parse_prompt_attention`` turns a prompt into ``(text, weight)`` runs, following
A1111 v1.10's rules:

* ``(x)`` multiplies the weight of ``x`` by 1.1, ``[x]`` divides it by 1.1,
  ``(x:w)`` multiplies it by ``w`` (any float, also below 1 or negative; spaces
  around ``w`` are allowed); brackets nest and their factors multiply.
* ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; a backslash
  before any other character is dropped (as in A1111).
* A ``)`` or ``]`` without its opener is literal text; openers left unclosed are
  closed at the end of the prompt (their factor still applies).
* ``BREAK`` written in capitals as a word of its own becomes ``("BREAK", -1.0)``,
  a marker the encoder turns into a chunk break; the whitespace around it is
  dropped.
* Adjacent runs with equal weights are merged; an empty prompt is ``[("", 1.0)]``.
* Unlike A1111, a weight that ends up non-finite (``(x:999...9)`` overflows to
  Inf, ``((x:0):Inf)`` is NaN) or beyond +-``MAX_WEIGHT`` raises
  ``PromptWeightError`` naming the text: it would only make NaN conditioning and
  a black image. (``(x:nan)`` is not a weight in A1111's syntax: it stays text.)

The multiplication order is A1111's (weights are multiplied into the runs
already collected when a bracket closes), so the floats are bit-identical to
A1111's: ``(((sky)))`` gives ``1.4641000000000006``.
"""

from __future__ import annotations

import math
import re

from webui.engine.requests import RequestError

__all__ = ["BREAK", "MAX_WEIGHT", "PromptWeightError", "parse_prompt_attention", "ROUND_MULTIPLIER",
           "SQUARE_MULTIPLIER"]

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

#: The largest emphasis weight accepted. Weights in use are about -2..3; ``((((x:10))))`` is 14.6, and the
#: emphasis rescaling keeps anything up to 100 finite in fp16, while 1e300 overflows to Inf.
MAX_WEIGHT = 100.0

#: The chunk-break marker: ``("BREAK", -1.0)`` in the parsed list.
BREAK = ("BREAK", -1.0)

# One token of the emphasis language per match, tried in this order: escapes,
# openers, a ":weight)" closer, plain closers, a run of plain text, a lone colon.
_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]            # escaped bracket or backslash
  | \\                      # lone backslash: dropped
  | \(
  | \[
  | :\s*(?P<weight>[+-]?[.\d]+)\s*\)
  | \)
  | \]
  | [^\\()\[\]:]+
  | :
    """,
    re.X,
)

_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*", re.S)


class PromptWeightError(RequestError):
    """An emphasis weight that is not finite or too large; ``str(err)`` is a message for the user."""


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(text, weight)`` runs following A1111's emphasis rules.

    >>> parse_prompt_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    >>> parse_prompt_attention("a BREAK b")
    [('a', 1.0), ('BREAK', -1.0), ('b', 1.0)]
    """
    runs: list[list] = []  # [text, weight] pairs, mutable while brackets close
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        weight = match.group("weight")
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])  # a lone backslash vanishes, as in A1111
        elif token == "(":
            round_open.append(len(runs))
        elif token == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            try:
                factor = float(weight)
            except ValueError:  # e.g. "1.2.3": not a number, the run stays literal
                runs.append([token, 1.0])
                continue
            scale_from(round_open.pop(), factor)
        elif token == ")" and round_open:
            scale_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            scale_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for index, part in enumerate(_BREAK_SPLIT.split(token)):
                if index > 0:
                    runs.append(list(BREAK))
                runs.append([part, 1.0])

    for start in round_open:
        scale_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale_from(start, SQUARE_MULTIPLIER)

    if not runs:
        runs = [["", 1.0]]

    _check_weights(runs)
    merged: list[list] = [runs[0]]
    for run in runs[1:]:
        if run[1] == merged[-1][1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(str(t), float(w)) for t, w in merged]


def _check_weights(runs: list[list]) -> None:
    for text, weight in runs:
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise PromptWeightError(f"attention weight {weight:g} of {text.strip()[:40]!r} is out of range: it must be "
                                    f"a finite number between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g} (the weights of "
                                    f"nested brackets multiply)")
