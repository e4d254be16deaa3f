"""Prompt editing ``[from:to:when]`` and alternation ``[a|b]`` (A1111 v1.10 semantics).

``prompt_schedule(prompt, steps)`` returns what A1111's
``get_learned_conditioning_prompt_schedules`` returns for one prompt: a list of
``(end_at_step, text)`` pairs, sorted by ``end_at_step``, the last one ending at
``steps``.

Syntax (A1111's grammar, re-implemented as a small recursive-descent parser):

* ``[from:to:when]`` uses ``from`` while ``step <= when``, then ``to``;
  ``[to:when]`` adds ``to`` after ``when``; ``[from::when]`` removes ``from``
  after ``when``. Spaces around ``when`` are allowed.
* ``when`` containing a ``.`` is a fraction of the steps (``0.5`` -> half),
  otherwise an absolute step; ``int()`` truncates and the value is capped at
  ``steps``. Values below 1 never become a boundary (so ``[a:b:0]`` is ``b``
  throughout). ``use_old_scheduling=True`` gives the pre-1.6 rule (a value
  below 1 is a fraction, anything else a step) - A1111's "Use old prompt
  editing timelines" setting.
* ``[a|b|c]`` picks option ``(step - 1) % n`` at each step; empty options are
  allowed (``[fe|]male``). Every step becomes a boundary.
* Constructs nest (``a[b:[c:d:2]:1]e``); emphasis brackets ``(x)`` ``(x:1.2)``
  ``[x]`` are kept as text for the attention parser.
* At the top level, brackets and colons that are not part of a construct are
  plain text (``((a][:b:c [d:3]`` still schedules ``[d:3]``). A prompt that
  does not parse - a ``|`` outside any ``[...|...]``, a backslash at the very
  end - is used literally, unscheduled, as A1111 does.

Hires fix (``hires_steps`` given, new scheduling): the schedule is for the
second pass, ``steps`` being the first pass's step count. An integer ``when``
counts from the start of the first pass (``[a:b:15]`` with 10 + 10 steps
switches at hires step 5) and a fraction spans both passes (``1.5`` = half way
through the second pass, anything below ``1.0`` is already over).

How the steps are counted when sampling (A1111's CFG denoiser, checked in
v1.10.1's ``sd_samplers_cfg_denoiser.py``): the denoiser keeps a 0-based
counter of its calls and uses the first entry whose ``end_at_step`` is
``>= counter`` (the first entry if none). So with 10 steps ``[a:b:3]`` uses
``a`` for the first 4 UNet calls and ``[a|b]`` gives ``a, a, b, a, b ...``.
``text_index_at(schedule, i)`` implements exactly that lookup. The schedule is
built from ``p.steps`` for txt2img *and img2img* (the img2img counter still
starts at 0 on the first step actually run, so with denoising strength 0.5 only
the first half of the schedule is reached), from ``steps * 2`` for the
second-order samplers (Heun, DPM2, DPM++ 2S a, DPM++ SDE: one counter tick per
UNet call), and with ``hires_steps`` for the hires pass (counter restarted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from webui.engine.requests import RequestError

__all__ = [
    "PromptScheduleError",
    "parse_schedule",
    "prompt_schedule",
    "prompt_schedules",
    "text_index_at",
    "text_at",
]

# lark's common.SIGNED_NUMBER: optional sign, then INT, DECIMAL ("1." "1.5" ".5"), optional exponent.
_NUMBER = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_WHITESPACE = re.compile(r"\s+")
_MAX_DEPTH = 100


class PromptScheduleError(RequestError):
    """The prompt does not follow the editing grammar (it is then used literally)."""


@dataclass(frozen=True)
class _Scheduled:
    before: tuple | None  # None: the "[to:when]" form
    after: tuple
    when: str  # the NUMBER token as written


@dataclass(frozen=True)
class _Alternate:
    options: tuple  # of sequences


_Node = Union[str, _Scheduled, _Alternate, tuple]


class _Parser:
    """Recursive descent over A1111's prompt-editing grammar.

    ``start := (element | stray)*`` where a stray is one of ``[ ] ( ) :`` that is
    not part of a construct (only allowed at the top level);
    ``prompt := element*``; ``element := plain | ( prompt ) | ( prompt : prompt )
    | [ prompt ] | [ [prompt :] prompt : NUMBER ] | [ prompt (| [prompt])+ ]``;
    plain text is any run of characters other than ``\\ [ ] ( ) : |`` and
    backslash escapes of any character but a newline.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._memo: dict[int, tuple | None] = {}  # construct at position -> (node, end) or None

    class _NoMatch(Exception):
        pass

    def parse(self) -> tuple:
        text = self.text
        out: list = []
        pos = 0
        while pos < len(text):
            char = text[pos]
            if char in "[(":
                try:
                    node, pos = self._construct(pos, 1)
                    out.append(node)
                    continue
                except self._NoMatch:
                    out.append(char)  # a stray bracket: literal text
                    pos += 1
                    continue
            if char in "]):":
                out.append(char)
                pos += 1
                continue
            if char == "|":
                raise PromptScheduleError(f"'|' outside of [a|b] at position {pos}")
            plain, pos = self._plain(pos)
            if not plain:
                raise PromptScheduleError(f"unexpected {text[pos]!r} at position {pos}")
            out.append(plain)
        return tuple(out)

    def _plain(self, pos: int) -> tuple[str, int]:
        text = self.text
        start = pos
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                if pos + 1 < len(text) and text[pos + 1] != "\n":
                    pos += 2
                    continue
                break
            if char in "[]():|":
                break
            pos += 1
        return text[start:pos], pos

    def _prompt(self, pos: int, depth: int) -> tuple[tuple, int]:
        """A possibly empty sequence of elements; stops before ``] ) : |`` or a failed construct."""
        text = self.text
        out: list = []
        while pos < len(text):
            char = text[pos]
            if char in "[(":
                try:
                    node, pos = self._construct(pos, depth + 1)
                except self._NoMatch:
                    break
                out.append(node)
                continue
            plain, new_pos = self._plain(pos)
            if not plain:
                break
            out.append(plain)
            pos = new_pos
        return tuple(out), pos

    def _when(self, pos: int) -> tuple[str, int]:
        """``[WHITESPACE] NUMBER [WHITESPACE] ]`` -> (number, position after ``]``)."""
        text = self.text
        ws = _WHITESPACE.match(text, pos)
        if ws:
            pos = ws.end()
        number = _NUMBER.match(text, pos)
        if not number:
            raise self._NoMatch
        pos = number.end()
        ws = _WHITESPACE.match(text, pos)
        if ws:
            pos = ws.end()
        if pos < len(text) and text[pos] == "]":
            return number.group(0), pos + 1
        raise self._NoMatch

    def _construct(self, pos: int, depth: int) -> tuple[_Node, int]:
        """A bracket construct starting at ``pos``; its parse does not depend on the context, so it is memoised."""
        if pos in self._memo:
            found = self._memo[pos]
            if found is None:
                raise self._NoMatch
            return found
        if depth > _MAX_DEPTH:  # deeper nesting is treated as unbalanced brackets
            raise self._NoMatch
        try:
            found = self._construct_uncached(pos, depth)
        except self._NoMatch:
            self._memo[pos] = None
            raise
        self._memo[pos] = found
        return found

    def _construct_uncached(self, pos: int, depth: int) -> tuple[_Node, int]:
        text = self.text
        opener = text[pos]
        first, pos = self._prompt(pos + 1, depth)
        if pos >= len(text):
            raise self._NoMatch
        char = text[pos]
        if opener == "(":
            if char == ")":
                return ("(", first, ")"), pos + 1
            if char == ":":
                second, pos = self._prompt(pos + 1, depth)
                if pos < len(text) and text[pos] == ")":
                    return ("(", first, ":", second, ")"), pos + 1
            raise self._NoMatch
        # opener == "["
        if char == "]":
            return ("[", first, "]"), pos + 1
        if char == "|":
            options = [first]
            while pos < len(text) and text[pos] == "|":
                option, pos = self._prompt(pos + 1, depth)
                options.append(option)
            if pos < len(text) and text[pos] == "]":
                return _Alternate(tuple(options)), pos + 1
            raise self._NoMatch
        if char == ":":
            try:  # "[to:when]"
                when, end = self._when(pos + 1)
                return _Scheduled(None, first, when), end
            except self._NoMatch:
                pass
            second, pos = self._prompt(pos + 1, depth)
            if pos < len(text) and text[pos] == ":":
                when, end = self._when(pos + 1)
                return _Scheduled(first, second, when), end
        raise self._NoMatch


def parse_schedule(prompt: str) -> tuple:
    """Parse ``prompt`` into a tree; raises ``PromptScheduleError`` where A1111's parser fails."""
    return _Parser(prompt).parse()


def _when_step(node: _Scheduled, steps: int, int_offset: int, flt_offset: float, old: bool) -> int:
    value = float(node.when)
    if old:
        value = value * steps if value < 1 else value
    elif "." in node.when:
        value = (value - flt_offset) * steps
    else:
        value = value - int_offset
    # "[a:b:1e400]" is Inf: past the last step like any value above it (int(inf) would raise OverflowError)
    return int(max(-1.0, min(float(steps), value)))


def _walk(node, visit) -> None:
    if isinstance(node, str):
        return
    visit(node)
    if isinstance(node, _Scheduled):
        for part in (node.before or (), node.after):
            _walk(part, visit)
    elif isinstance(node, _Alternate):
        for option in node.options:
            _walk(option, visit)
    else:
        for child in node:
            _walk(child, visit)


def _render(node, step: int, whens: dict[int, int], out: list[str]) -> None:
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, _Scheduled):
        if step <= whens[id(node)]:
            _render(node.before or (), step, whens, out)
        else:
            _render(node.after, step, whens, out)
    elif isinstance(node, _Alternate):
        _render(node.options[(step - 1) % len(node.options)], step, whens, out)
    else:
        for child in node:
            _render(child, step, whens, out)


def prompt_schedule(
    prompt: str,
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[tuple[int, str]]:
    """``[(end_at_step, text), ...]`` for ``prompt`` sampled with ``steps`` steps.

    >>> prompt_schedule("a [b:c:3] d", 10)
    [(3, 'a b d'), (10, 'a c d')]
    >>> prompt_schedule("[a|b]", 3)
    [(1, 'a'), (2, 'b'), (3, 'a')]
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, flt_offset, total = 0, 0.0, steps
    else:
        int_offset, flt_offset, total = steps, 1.0, hires_steps
    try:
        tree = parse_schedule(prompt)
    except PromptScheduleError:
        return [(total, prompt)]

    whens: dict[int, int] = {}
    boundaries = {total}

    def collect(node) -> None:
        if isinstance(node, _Scheduled):
            when = _when_step(node, total, int_offset, flt_offset, use_old_scheduling)
            whens[id(node)] = when
            if when >= 1:
                boundaries.add(when)
        elif isinstance(node, _Alternate):
            boundaries.update(range(1, total + 1))

    _walk(tree, collect)
    result = []
    for step in sorted(boundaries):
        out: list[str] = []
        _render(tree, step, whens, out)
        result.append((step, "".join(out)))
    return result


def prompt_schedules(
    prompts: list[str],
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list[tuple[int, str]]]:
    """``prompt_schedule`` for each prompt (each distinct prompt parsed once)."""
    cache: dict[str, list[tuple[int, str]]] = {}
    for prompt in prompts:
        if prompt not in cache:
            cache[prompt] = prompt_schedule(prompt, steps, hires_steps, use_old_scheduling)
    return [list(cache[p]) for p in prompts]


def text_index_at(schedule: list[tuple[int, str]], step_index: int) -> int:
    """Index of the schedule entry A1111 uses at the 0-based sampling step ``step_index``.

    The first entry with ``step_index <= end_at_step``; the first entry when the
    counter has run past every end (A1111's fallback).
    """
    for index, (end_at_step, _) in enumerate(schedule):
        if step_index <= end_at_step:
            return index
    return 0


def text_at(schedule: list[tuple[int, str]], step_index: int) -> str:
    """The text A1111 conditions on at the 0-based sampling step ``step_index``."""
    return schedule[text_index_at(schedule, step_index)][1]
