"""Settings tab: the user's defaults, saved atomically to config.yaml (previous file kept as config.yaml.bak).

Sampler, schedule, steps, CFG, size limit, preview interval and cache size apply at once; the outputs folder and
the queue size apply after a restart (the file server and the queue are set up at start)."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from webui.engine.samplers import sampler_names, schedule_names
from webui.settings import EDITABLE, save_user_settings
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel

RESTART_FIELDS = ("outputs_dir", "queue_size")


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def apply_settings(ctx: UiContext, values: dict) -> tuple[str, str]:
    """Validate, save and apply; returns (message, kind)."""
    engine = ctx.engine
    changes = {k: v for k, v in values.items() if k in EDITABLE}
    try:
        for k in ("checkpoint_cache_size", "max_image_side", "default_steps", "queue_size", "preview_every",
                  "max_combinations"):
            if k in changes:
                changes[k] = int(changes[k])
        changes["default_cfg_scale"] = float(changes["default_cfg_scale"])
        for k in ("save_images", "api_always_save"):
            if k in changes:
                changes[k] = bool(changes[k])
        out = (changes.get("outputs_dir") or "").strip()
        changes["outputs_dir"] = Path(out) if out else None
    except (TypeError, ValueError, KeyError) as exc:
        return f"Invalid value: {exc}", "error"
    problems = []
    if changes["checkpoint_cache_size"] < 1:
        problems.append("checkpoints kept in RAM must be at least 1")
    if not 64 <= changes["max_image_side"] <= 16384:
        problems.append("largest image side must be between 64 and 16384")
    if not 1 <= changes["default_steps"] <= 1000:
        problems.append("steps must be between 1 and 1000")
    if not 1 <= changes["queue_size"] <= 10000:
        problems.append("queue size must be between 1 and 10000")
    if not 0 <= changes.get("preview_every", 0) <= 1000:
        problems.append("preview interval must be between 0 (off) and 1000 steps")
    if not 1 <= changes.get("max_combinations", 1) <= 100000:
        problems.append("wildcard combinations must be between 1 and 100000")
    if problems:
        return "Not saved: " + "; ".join(problems), "error"
    old = engine.settings
    new = old.with_overrides(**changes)
    try:
        save_user_settings(new)
    except OSError as exc:
        return f"Could not write {new.settings_file}: {exc}", "error"
    restart = [k for k in RESTART_FIELDS if getattr(old, k) != getattr(new, k)]
    # apply what can change while running; the rest waits for a restart
    live = new.with_overrides(**{k: getattr(old, k) for k in RESTART_FIELDS})
    engine.settings = live
    engine.models.set_cache_size(new.checkpoint_cache_size)
    msg = f"Saved to {new.settings_file} (previous version kept as {new.settings_file.name}.bak)"
    if restart:
        msg += f". Restart to apply: {', '.join(restart)}"
    return msg, "ok"


def build(ctx: UiContext, panels: dict[str, GenerationPanel]) -> None:
    s = ctx.engine.settings
    with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
        if ctx.notice:
            gr.HTML(f'<div class="ls-notice">{html.escape(ctx.notice)}</div>', js_on_load=None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                gr.Markdown("### Generation defaults")
                sampler = gr.Dropdown(sampler_names(), value=s.default_sampler, label="Sampler",
                                      elem_id="settings_sampler")
                scheduler = gr.Dropdown(schedule_names(), value=s.default_scheduler, label="Schedule type",
                                        elem_id="settings_scheduler")
                steps = gr.Slider(1, 150, value=s.default_steps, step=1, label="Steps", elem_id="settings_steps")
                cfg = gr.Slider(1, 30, value=s.default_cfg_scale, step=0.5, label="CFG scale", elem_id="settings_cfg")
                max_side = gr.Number(value=s.max_image_side, precision=0, label="Largest image side (px)",
                                     elem_id="settings_max_side")
                preview_every = gr.Slider(0, 50, value=getattr(s, "preview_every", 5), step=1,
                                          label="Live preview every N steps (0 = off)",
                                          elem_id="settings_preview_every")
                max_comb = gr.Number(value=getattr(s, "max_combinations", 100), precision=0,
                                     label="Wildcards: most images in combinatorial mode",
                                     elem_id="settings_max_combinations")
            with gr.Column(scale=1, min_width=320):
                gr.Markdown("### Files and memory")
                save_images = gr.Checkbox(value=s.save_images, label="Save every generated image",
                                          elem_id="settings_save_images")
                api_save = gr.Checkbox(value=getattr(s, "api_always_save", False), elem_id="settings_api_save",
                                       label="Save API images even when a request asks not to")
                outputs_dir = gr.Textbox(value=str(s.outputs_dir or ""), label="Outputs folder",
                                         placeholder=str(s.outputs_path), elem_id="settings_outputs_dir",
                                         info="Empty = outputs/ in the data folder (applies after a restart)")
                cache = gr.Number(value=s.checkpoint_cache_size, precision=0, label="Checkpoints kept in RAM",
                                  elem_id="settings_cache_size")
                queue_size = gr.Number(value=s.queue_size, precision=0, label="Queue size (jobs waiting)",
                                       elem_id="settings_queue_size", info="Applies after a restart")
                save_btn = gr.Button("Save settings", variant="primary", elem_id="settings_save")
                message = gr.HTML("", elem_id="settings_message", js_on_load=None)
                gr.HTML(f'<div class="ls-hint">Settings file: {html.escape(str(s.settings_file))}<br>'
                        f'Device: {html.escape(ctx.engine.device.describe())}</div>', js_on_load=None)

    fields = dict(default_sampler=sampler, default_scheduler=scheduler, default_steps=steps, default_cfg_scale=cfg,
                  max_image_side=max_side, preview_every=preview_every, max_combinations=max_comb,
                  save_images=save_images, api_always_save=api_save, outputs_dir=outputs_dir,
                  checkpoint_cache_size=cache, queue_size=queue_size)
    fields = {k: v for k, v in fields.items() if k in EDITABLE}

    def save(*values):
        text, kind = apply_settings(ctx, dict(zip(fields, values)))
        return _msg(text, kind)

    save_btn.click(save, list(fields.values()), message, api_visibility="private")
