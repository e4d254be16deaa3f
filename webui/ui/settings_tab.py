"""Settings tab: the user's defaults, saved atomically to config.yaml (previous file kept as config.yaml.bak).

Sampler, schedule, steps, CFG, size limit, preview interval and cache size apply at once; the outputs folder and
the queue size apply after a restart (the file server and the queue are set up at start)."""
from __future__ import annotations

import dataclasses
import html

import gradio as gr

from webui.engine.samplers import sampler_names, schedule_names
from webui.settings import EDITABLE, SettingError, Settings
from webui.ui.context import UiContext
from webui.ui.generation import GenerationPanel


def _msg(text: str, kind: str = "ok") -> str:
    return f'<div class="ls-status ls-{kind}"><span class="ls-status-text">{html.escape(text)}</span></div>'


def apply_settings(ctx: UiContext, values: dict) -> tuple[str, str]:
    """Check, save and apply through the engine; returns (message, kind)."""
    changes = {k: v for k, v in values.items() if k in EDITABLE}
    try:
        restart = ctx.engine.update_settings(changes)
    except SettingError as exc:
        return f"Not saved: {exc}", "error"
    except OSError as exc:
        return f"Could not write {ctx.engine.settings.settings_file}: {exc}", "error"
    path = ctx.engine.settings.settings_file
    msg = f"Saved to {path} (previous version kept as {path.name}.bak)"
    if restart:
        msg += f". Restart to apply: {', '.join(restart)}"
    return msg, "ok"


def origin_rows(s) -> list[tuple[str, str, str, str]]:
    """(setting, value now, where it comes from, default) for every setting: the editable ones, then those only
    the command line sets (folders, device, memory)."""
    default = Settings(data_dir=s.data_dir)
    names = [*EDITABLE, *(f.name for f in dataclasses.fields(Settings) if f.name not in EDITABLE
                          and f.name != "origins")]
    rows = []
    for name in names:
        value, fallback = getattr(s, name), getattr(default, name)
        rows.append((name, _shown(value), s.origin(name), _shown(fallback)))
    return rows


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "—"
    return "—" if value is None else str(value)


def origins_html(s) -> str:
    """The table of `origin_rows`: each value with where it comes from (default, config.yaml, command line)."""
    body = "".join(f"<tr><th>{html.escape(n)}</th><td>{html.escape(v)}</td><td>{html.escape(o)}</td>"
                   f"<td>{html.escape(d)}</td></tr>" for n, v, o, d in origin_rows(s))
    return ('<table class="ls-kv ls-origins"><tr><th>Setting</th><th>Value</th><th>From</th><th>Default</th></tr>'
            f"{body}</table>")


def _folder_hint(s) -> str:
    if s.freeze_settings:
        return "Settings are frozen (--freeze-settings)"
    if s.lock_folders:
        return "Set on the command line (--outdir) or in the settings file: the server is reachable from other " \
               "machines (--listen, --share) or started with --hide-ui-dir-config"
    return "Empty = outputs/ in the data folder (applies after a restart)"


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
                steps = gr.Number(value=s.default_steps, precision=0, label="Steps", elem_id="settings_steps")
                cfg = gr.Slider(1, 30, value=s.default_cfg_scale, step=0.5, label="CFG scale", elem_id="settings_cfg")
                max_side = gr.Number(value=s.max_image_side, precision=0, label="Largest image side (px)",
                                     elem_id="settings_max_side")
                with gr.Row(elem_classes="ls-tight"):  # the tabs' slider maxima; above them a job is refused
                    max_steps = gr.Number(value=s.max_steps, precision=0, label="Most sampling steps (UI)",
                                          elem_id="settings_max_steps")
                    max_images = gr.Number(value=s.max_batch_images, precision=0, label="Most images per job",
                                           elem_id="settings_max_batch_images")
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
                                         interactive=not (s.lock_folders or s.freeze_settings),
                                         info=_folder_hint(s))
                cache = gr.Number(value=s.checkpoint_cache_size, precision=0, label="Checkpoints kept in RAM",
                                  elem_id="settings_cache_size")
                queue_size = gr.Number(value=s.queue_size, precision=0, label="Queue size (jobs waiting)",
                                       elem_id="settings_queue_size", info="Applies after a restart")
                with gr.Row(elem_classes="ls-tight"):
                    tile = gr.Number(value=s.upscaler_tile, precision=0, label="Upscaler tile size (px, 0 = whole)",
                                     elem_id="settings_upscaler_tile")
                    overlap = gr.Number(value=s.upscaler_tile_overlap, precision=0, label="Upscaler tile overlap (px)",
                                        elem_id="settings_upscaler_tile_overlap")
                with gr.Row(elem_classes="ls-tight"):
                    face_model = gr.Radio(["CodeFormer", "GFPGAN", "RestoreFormer"], value=s.face_restoration_model,
                                          label="Face restoration model (Restore faces)",
                                          elem_id="settings_face_restoration_model")
                    cf_weight = gr.Slider(0, 1, value=s.code_former_weight, step=0.01, elem_id="settings_cf_weight",
                                          label="CodeFormer weight (0 = strongest, 1 = closest to the input)")
                save_btn = gr.Button("Save settings", variant="primary", elem_id="settings_save",
                                     interactive=not s.freeze_settings)
                message = gr.HTML("", elem_id="settings_message", js_on_load=None)
                gr.HTML(f'<div class="ls-hint">Settings file: {html.escape(str(s.settings_file))}<br>'
                        f'Device: {html.escape(ctx.engine.device.describe())}</div>', js_on_load=None)
        with gr.Accordion("Where each value comes from", open=False, elem_id="settings_origins_box"):
            origins = gr.HTML(origins_html(s), elem_id="settings_origins", js_on_load=None)

    fields = dict(default_sampler=sampler, default_scheduler=scheduler, default_steps=steps, default_cfg_scale=cfg,
                  max_image_side=max_side, max_steps=max_steps, max_batch_images=max_images,
                  preview_every=preview_every, max_combinations=max_comb,
                  save_images=save_images, api_always_save=api_save, outputs_dir=outputs_dir,
                  checkpoint_cache_size=cache, queue_size=queue_size, upscaler_tile=tile,
                  upscaler_tile_overlap=overlap, face_restoration_model=face_model, code_former_weight=cf_weight)
    fields = {k: v for k, v in fields.items() if k in EDITABLE}

    def save(*values):
        text, kind = apply_settings(ctx, dict(zip(fields, values)))
        return _msg(text, kind), origins_html(ctx.engine.settings)

    save_btn.click(save, list(fields.values()), [message, origins], api_visibility="private")
