"""`LimitSlider`: a slider whose maximum is a setting's, never a hidden clamp (see webui/ui/limits.py).

In a module of its own because Gradio writes a type stub (`limit_slider.pyi`, kept in git) beside the module of
every component class it meets.
"""
from __future__ import annotations

import gradio as gr
from gradio.components.number import Number

LIMIT_CLASS = "ls-limit"

from gradio.events import Dependency

class LimitSlider(gr.Slider):
    """A `gr.Slider` (same arguments, same frontend) whose value outside its range is passed on as typed instead of
    raising: the handler refuses it with a message in the status line, naming the setting above the maximum
    (`webui.ui.limits.check_limits`). The page keeps a typed value above the maximum too (`limits.LIMITS_HEAD`, for
    elements with the class LIMIT_CLASS). Build one with `webui.ui.limits.limit_slider`, which sets `setting` and
    `cap` (the track's maximum is at most `cap`; the limit itself is the setting's value)."""

    is_template = True  # rendered by Gradio's own Slider frontend
    setting: str = ""
    cap: int | None = None

    def preprocess(self, payload: float | None) -> float | None:
        if payload is None:
            return None
        return Number.round_to_precision(payload, self.precision)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component  # no range check: the handler says what is wrong