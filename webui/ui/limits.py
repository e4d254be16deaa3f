"""Limits from settings, not hidden clamps.

A Gradio slider clamps a typed value to its maximum when the number box loses focus, so "200" steps silently became
150. Here the sliders whose maximum is a limit (steps: `max_steps`; sizes: `max_image_side`; batch count:
`max_batch_images`) are `LimitSlider`s (`limit_slider`): their maximum comes from the settings, the page keeps a
typed value above it (`LIMITS_HEAD` stops the clamp for their number boxes), the server takes it as typed, and
`check_limits` refuses it with a message that names the setting, shown in the tab's status line.
"""
from __future__ import annotations

import gradio as gr

from webui.ui.limit_slider import LIMIT_CLASS, LimitSlider

# request field -> (label in the tab, the setting that limits it)
LIMITS: dict[str, tuple[str, str]] = {
    "steps": ("Sampling steps", "max_steps"),
    "hr_second_pass_steps": ("Hires steps", "max_steps"),
    "width": ("Width", "max_image_side"),
    "height": ("Height", "max_image_side"),
    "hr_resize_x": ("Resize width to", "max_image_side"),
    "hr_resize_y": ("Resize height to", "max_image_side"),
}
SETTING_LABELS = {"max_steps": "Most sampling steps", "max_image_side": "Largest image side",
                  "max_batch_images": "Most images per job"}
BATCH_SIZE_TRACK = 8  # A1111's batch size slider goes to 8; more may be typed, up to max_batch_images in all

# Gradio's slider clamps its number box on blur; for limit sliders the blur is stopped before it reaches the box
# (capture phase), so the typed value stays and reaches the server, which refuses it with a message.
LIMITS_HEAD = """
<script>
document.addEventListener('blur', (e) => {
  const t = e.target;
  if (t instanceof HTMLInputElement && t.type === 'number' && t.closest('.%s')) e.stopPropagation();
}, true);
</script>
""" % LIMIT_CLASS


class LimitError(ValueError):
    """A value above the limit a setting sets; the message names the setting."""


def track_maximum(settings, setting: str, cap: int | None = None) -> int:
    """A limit slider's maximum: the setting's value (at most `cap`, the track only)."""
    top = int(getattr(settings, setting))
    return min(top, cap) if cap else top


def limit_slider(minimum: float, settings, setting: str, cap: int | None = None, **kw) -> LimitSlider:
    """A slider that goes up to `setting`'s value; above it, `check_limits` refuses with the setting's name."""
    classes = kw.pop("elem_classes", None) or []
    classes = [classes] if isinstance(classes, str) else list(classes)
    slider = LimitSlider(minimum, track_maximum(settings, setting, cap), elem_classes=[*classes, LIMIT_CLASS], **kw)
    slider.setting, slider.cap = setting, cap
    return slider


def limit_message(label: str, value, setting: str, top) -> str:
    name = SETTING_LABELS.get(setting, setting)
    return (f"{label} {value:g} is above the maximum of {top} (setting {setting}, \"{name}\" in the Settings tab); "
            "not generated")


def check_limits(settings, fields: dict) -> None:
    """LimitError naming the setting for the first request field above its limit (`fields` holds request names)."""
    for field, (label, setting) in LIMITS.items():
        value, top = fields.get(field), getattr(settings, setting)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > top:
            raise LimitError(limit_message(label, value, setting, top))
    count, size = fields.get("n_iter") or 1, fields.get("batch_size") or 1
    if count * size > settings.max_batch_images:
        raise LimitError(f"Batch count x batch size = {count} x {size} = {count * size} images is above the maximum "
                         f"of {settings.max_batch_images} (setting max_batch_images, \"Most images per job\" in the "
                         "Settings tab); not generated")


def refresh_maxima(sliders: list[LimitSlider], settings) -> list:
    """Updates that set each slider's maximum from the current settings (on page load, after a Settings change)."""
    return [gr.update(maximum=track_maximum(settings, s.setting, s.cap)) for s in sliders]


def limit_sliders(panel) -> list[LimitSlider]:
    """A GenerationPanel's limit sliders (hires ones included)."""
    found = [v for v in vars(panel).values() if isinstance(v, LimitSlider)]
    found += [v for v in (getattr(panel, "hires", None) or {}).values() if isinstance(v, LimitSlider)]
    return list(dict.fromkeys(found))
