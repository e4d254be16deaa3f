"""The controls and results shared by the txt2img and img2img tabs (built once per tab).

Generation runs as a gradio generator: it submits one `GenerationRequest` to the engine's queue and polls the job
state (queue position, step, ETA, live preview) until the result is there. Interrupt / Skip act on this page's job.
"""
from __future__ import annotations

import html
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from webui.engine import (LATENT_MODES, MASKED_CONTENT, RESIZE_MODES, CheckpointLoadError,
                          QueueFullError, RequestError, SamplerError)
from webui.engine.infotext import parse_infotext
from webui.engine.samplers import sampler_names, schedule_names
from webui.ui.context import UiContext
from webui.ui.extra_networks import ExtraNetworksPanel
from webui.ui.gallery_actions import GalleryActions, record_label, result_records
from webui.ui.limits import BATCH_SIZE_TRACK, check_limits, limit_slider
from webui.ui.params import has_parameters
from webui.ui.recall import recall
from webui.ui.controlnet_panel import ControlNetPanel
from webui.ui.scripts_panel import ScriptsPanel

POLL_SECONDS = 0.3
ZERO_TOKENS = '<span class="ls-count">0/75</span>'
DEFAULT_SIZE = 512


class UserError(ValueError):
    """Something the user can fix; shown in the status line."""


def status_html(text: str, kind: str = "info", progress: float | None = None) -> str:
    bar = ""
    if progress is not None:
        pct = max(0.0, min(1.0, progress)) * 100
        bar = f'<div class="ls-bar"><div class="ls-bar-fill" style="width:{pct:.1f}%"></div></div>'
    return f'<div class="ls-status ls-{kind}">{bar}<span class="ls-status-text">{html.escape(text)}</span></div>'


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA —"
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"ETA {seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"ETA {seconds // 60}m{seconds % 60:02d}s"
    return f"ETA {seconds}s"


def progress_text(state) -> str:
    parts = []
    if state.sampling_steps:
        parts.append(f"Step {state.sampling_step}/{state.sampling_steps}")
    else:
        parts.append("Preparing")
    if state.job_count > 1:
        parts.append(f"Batch {state.job_no + 1}/{state.job_count}")
    parts.append(f"{state.progress * 100:.0f}%")
    parts.append(format_eta(state.eta))
    return " · ".join(parts)


def editor_to_init(value: Any) -> tuple[Image.Image | None, Image.Image | None]:
    """ImageEditor value -> (init image RGB, mask L with 255 = repaint, or None when nothing was drawn)."""
    if value is None:
        return None, None
    if isinstance(value, Image.Image):
        return value.convert("RGB"), None
    background = value.get("background")
    if background is None:
        background = value.get("composite")
    if background is None:
        return None, None
    if isinstance(background, np.ndarray):
        background = Image.fromarray(background)
    init = background.convert("RGB")
    mask_arr = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        if isinstance(layer, np.ndarray):
            layer = Image.fromarray(layer)
        layer = layer.convert("RGBA")
        if layer.size != init.size:
            layer = layer.resize(init.size, Image.NEAREST)
        alpha = np.asarray(layer)[..., 3]
        mask_arr = alpha if mask_arr is None else np.maximum(mask_arr, alpha)
    if mask_arr is None or not mask_arr.any():
        return init, None
    return init, Image.fromarray(np.where(mask_arr > 0, 255, 0).astype(np.uint8), "L")


class GenerationPanel:
    """Prompt boxes, parameters, Generate / Interrupt / Skip, and the results column of one tab."""

    def __init__(self, ctx: UiContext, mode: str):
        assert mode in ("txt2img", "img2img")
        self.ctx = ctx
        self.mode = mode
        self.fields: dict[str, gr.components.Component] = {}
        self.paste_events: list = []  # events that paste parameters here (the header then switches the model)

    # ---- layout ---------------------------------------------------------------------------------------
    def build(self) -> "GenerationPanel":
        m = self.mode
        engine = self.ctx.engine
        s = engine.settings
        styles = self.ctx.styles.names()
        with gr.Row(elem_classes="ls-top-row", equal_height=False):
            with gr.Column(scale=5, min_width=360):
                with gr.Group(elem_classes="ls-prompt-group"):
                    self.prompt = gr.Textbox(label="Prompt", lines=3, max_lines=12, elem_id=f"{m}_prompt",
                                             placeholder="Prompt (Ctrl+Enter to generate)")
                    self.prompt_tokens = gr.HTML(ZERO_TOKENS, elem_id=f"{m}_prompt_tokens", elem_classes="ls-tokens",
                                                 js_on_load=None)
                with gr.Group(elem_classes="ls-prompt-group"):
                    self.negative = gr.Textbox(label="Negative prompt", lines=2, max_lines=8, elem_id=f"{m}_neg_prompt",
                                               placeholder="Negative prompt")
                    self.negative_tokens = gr.HTML(ZERO_TOKENS, elem_id=f"{m}_neg_prompt_tokens",
                                                   elem_classes="ls-tokens", js_on_load=None)
            with gr.Column(scale=2, min_width=240, elem_classes="ls-actions"):
                self.generate_btn = gr.Button("Generate", variant="primary", size="lg", elem_id=f"{m}_generate")
                with gr.Row(elem_classes="ls-tight"):
                    self.interrupt_btn = gr.Button("Interrupt", size="sm", elem_id=f"{m}_interrupt", min_width=80)
                    self.skip_btn = gr.Button("Skip", size="sm", elem_id=f"{m}_skip", min_width=80)
                # A1111's ↙ (its elem_id is "paste" on both tabs; here img2img's is "img2img_paste", ids are unique)
                self.paste_btn = gr.Button("↙ Read parameters from prompt", size="sm",
                                           elem_id="paste" if m == "txt2img" else "img2img_paste")
                self.styles = gr.Dropdown(choices=styles, value=[], multiselect=True, label="Styles",
                                          elem_id=f"{m}_styles")
                self.apply_styles_btn = gr.Button("Apply styles to prompt", size="sm", elem_id=f"{m}_apply_styles")
        # A1111's extra networks (checkpoint, embedding and LoRA cards) under the prompt; wired in webui.ui.build_ui
        self.extra_networks = ExtraNetworksPanel(self.ctx, m).build()
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360, elem_classes="ls-params"):
                if m == "img2img":
                    self.init_editor = gr.ImageEditor(
                        label="Image (draw on it to inpaint only there)", type="pil", elem_id="img2img_image",
                        sources=["upload", "clipboard"], height=380, layers=False, format="png",
                        # a see-through white brush: the drawn area is repainted, the rest is kept
                        brush=gr.Brush(colors=[("#ffffff", 0.6)], default_color=("#ffffff", 0.6), color_mode="fixed"),
                        transforms=(),
                    )
                    self.resize_mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index",
                                                label="Resize mode", elem_id="img2img_resize_mode")
                    self._build_inpaint_controls()
                with gr.Row(elem_classes="ls-tight"):
                    self.sampler = gr.Dropdown(sampler_names(), value=s.default_sampler, label="Sampling method",
                                               elem_id=f"{m}_sampler")
                    self.scheduler = gr.Dropdown(schedule_names(), value=s.default_scheduler, label="Schedule type",
                                                 elem_id=f"{m}_scheduler")
                # maxima from settings; a typed value above one is refused with a message (webui/ui/limits.py)
                self.steps = limit_slider(1, s, "max_steps", value=s.default_steps, step=1, label="Sampling steps",
                                          elem_id=f"{m}_steps")
                with gr.Row(elem_classes="ls-tight ls-size-row"):
                    self.width = limit_slider(64, s, "max_image_side", value=DEFAULT_SIZE, step=8, label="Width",
                                              elem_id=f"{m}_width")
                    self.swap_btn = gr.Button("⇅", size="sm", elem_id=f"{m}_res_switch_btn", scale=0, min_width=44,
                                              elem_classes="ls-swap")  # A1111's: swap width and height
                    self.height = limit_slider(64, s, "max_image_side", value=DEFAULT_SIZE, step=8, label="Height",
                                               elem_id=f"{m}_height")
                with gr.Row(elem_classes="ls-tight"):
                    self.n_iter = limit_slider(1, s, "max_batch_images", value=1, step=1, label="Batch count",
                                               elem_id=f"{m}_batch_count")
                    self.batch_size = limit_slider(1, s, "max_batch_images", cap=BATCH_SIZE_TRACK, value=1, step=1,
                                                   label="Batch size", elem_id=f"{m}_batch_size")
                self.cfg = gr.Slider(1, 30, value=s.default_cfg_scale, step=0.5, label="CFG scale",
                                     elem_id=f"{m}_cfg_scale")
                if m == "img2img":
                    self.denoising = gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength",
                                               elem_id="img2img_denoising_strength")
                with gr.Row(elem_classes="ls-tight"):
                    self.restore_faces = gr.Checkbox(False, label="Restore faces", elem_id=f"{m}_restore_faces")
                    self.tiling = gr.Checkbox(False, label="Tiling (seamless: opposite edges continue each other)",
                                              elem_id=f"{m}_tiling")
                if m == "txt2img":
                    self._build_hires_controls()
                with gr.Row(elem_classes="ls-seed-row"):
                    self.seed = gr.Number(value=-1, label="Seed (-1 = random)", precision=0, elem_id=f"{m}_seed",
                                          scale=4, min_width=120)
                    self.random_seed_btn = gr.Button("⚄", size="sm", elem_id=f"{m}_random_seed", scale=0,
                                                     min_width=44)
                    self.reuse_seed_btn = gr.Button("♻", size="sm", elem_id=f"{m}_reuse_seed", scale=0, min_width=44)
                with gr.Accordion("Variation seed", open=False, elem_id=f"{m}_variation") as self.variation:
                    with gr.Row(elem_classes="ls-tight"):
                        self.subseed = gr.Number(value=-1, label="Variation seed", precision=0, elem_id=f"{m}_subseed")
                        self.subseed_strength = gr.Slider(0, 1, value=0, step=0.01, label="Variation strength",
                                                          elem_id=f"{m}_subseed_strength")
                self.clip_skip = gr.Slider(1, 12, value=1, step=1, label="Clip skip", elem_id=f"{m}_clip_skip")
                self.controlnet = ControlNetPanel(self.ctx.engine, m).build()
                self.scripts = ScriptsPanel(self.ctx.engine, m).build()
            with gr.Column(scale=1, min_width=360, elem_classes="ls-results"):
                self.status = gr.HTML(status_html("Ready"), elem_id=f"{m}_status", js_on_load=None)
                self.preview = gr.Image(label="Live preview", visible=False, interactive=False, format="png",
                                        elem_id=f"{m}_preview", elem_classes="ls-preview", height=420,
                                        buttons=[])
                self.gallery = gr.Gallery(label="Results", format="png", columns=4, height=460, object_fit="contain",
                                          elem_id=f"{m}_gallery", interactive=False, preview=True,
                                          buttons=["download", "fullscreen"])
                self.actions = GalleryActions(self).build()  # folder, save, zip, send to img2img/inpaint/extras
                self.infotext = gr.Textbox(label="Generation parameters", lines=4, max_lines=12, interactive=False,
                                           elem_id=f"{m}_infotext", buttons=["copy"])
        self.records = gr.State([])  # [{path, infotext, seed, subseed, image}] of the last result
        self.paste_target = gr.State(None)  # {"checkpoint", "vae"} a paste names, for the header to switch to
        self.selected = gr.State(0)
        self.job_id = gr.State(None)
        self.fields = {
            "prompt": self.prompt, "negative_prompt": self.negative, "sampler_name": self.sampler,
            "scheduler": self.scheduler, "steps": self.steps, "cfg_scale": self.cfg, "seed": self.seed,
            "width": self.width, "height": self.height, "subseed": self.subseed,
            "subseed_strength": self.subseed_strength, "clip_skip": self.clip_skip,
        }
        self.fields.update(tiling=self.tiling, restore_faces=self.restore_faces, styles=self.styles)
        if m == "img2img":
            self.fields.update(denoising_strength=self.denoising, mask_blur=self.mask_blur, mask_mode=self.mask_mode,
                               masked_content=self.masked_content, inpaint_area=self.inpaint_area,
                               inpaint_padding=self.padding)
        else:
            self.fields.update(enable_hr=self.enable_hr, denoising_strength=self.denoising, **self.hires)
        self._wire()
        return self

    def _build_hires_controls(self) -> None:
        """A1111's "Hires. fix": a second pass at a larger size (its names, defaults and element ids)."""
        s = self.ctx.engine.settings
        with gr.Accordion("Hires. fix", open=False, elem_id="txt2img_hr"):
            self.enable_hr = gr.Checkbox(False, label="Hires. fix (upscale, then a second pass)",
                                         elem_id="txt2img_enable_hr")
            with gr.Row(elem_classes="ls-tight"):
                upscaler = gr.Dropdown([*LATENT_MODES, *self.ctx.engine.list_upscalers()], value="Latent",
                                       label="Upscaler", elem_id="txt2img_hr_upscaler")
                steps = limit_slider(0, s, "max_steps", value=0, step=1, label="Hires steps (0: same)",
                                     elem_id="txt2img_hires_steps")
                self.denoising = gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                           elem_id="txt2img_denoising_strength")
            with gr.Row(elem_classes="ls-tight"):
                scale = gr.Slider(1, 4, value=2.0, step=0.05, label="Upscale by", elem_id="txt2img_hr_scale")
                resize_x = limit_slider(0, s, "max_image_side", value=0, step=8, label="Resize width to",
                                        elem_id="txt2img_hr_resize_x")
                resize_y = limit_slider(0, s, "max_image_side", value=0, step=8, label="Resize height to",
                                        elem_id="txt2img_hr_resize_y")
            with gr.Row(elem_classes="ls-tight"):
                sampler = gr.Dropdown(["Use same sampler", *sampler_names()], value="Use same sampler",
                                      label="Hires sampling method", elem_id="hr_sampler")
                scheduler = gr.Dropdown(["Use same scheduler", *schedule_names()], value="Use same scheduler",
                                        label="Hires schedule type", elem_id="hr_scheduler")
                checkpoint = gr.Dropdown(["Use same checkpoint", *(c.title for c in self.ctx.engine.list_checkpoints())],
                                         value="Use same checkpoint", label="Hires checkpoint",
                                         allow_custom_value=True, elem_id="hr_checkpoint")
            prompt = gr.Textbox(label="Hires prompt (empty: the prompt)", lines=2, elem_id="hires_prompt")
            negative = gr.Textbox(label="Hires negative prompt", lines=2, elem_id="hires_neg_prompt")
        self.hires = dict(hr_upscaler=upscaler, hr_second_pass_steps=steps, hr_scale=scale, hr_resize_x=resize_x,
                          hr_resize_y=resize_y, hr_sampler_name=sampler, hr_scheduler=scheduler, hr_prompt=prompt,
                          hr_negative_prompt=negative, hr_checkpoint_name=checkpoint)

    def _build_inpaint_controls(self) -> None:
        """A1111's inpaint settings (they apply when something is drawn on the image), with its names and defaults."""
        with gr.Accordion("Inpaint settings (when you draw on the image)", open=False,
                          elem_id="img2img_inpaint") as self.inpaint_accordion:
            with gr.Row(elem_classes="ls-tight"):
                self.mask_blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
                self.mask_mode = gr.Radio(["Inpaint masked", "Inpaint not masked"], value="Inpaint masked",
                                          type="index", label="Mask mode", elem_id="img2img_mask_mode")
            self.masked_content = gr.Radio(list(MASKED_CONTENT), value="original", type="index",
                                           label="Masked content", elem_id="img2img_inpainting_fill")
            with gr.Row(elem_classes="ls-tight"):
                self.inpaint_area = gr.Radio(["Whole picture", "Only masked"], value="Whole picture", type="index",
                                             label="Inpaint area", elem_id="img2img_inpaint_full_res")
                self.padding = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                         elem_id="img2img_inpaint_full_res_padding")

    def inpaint_fields(self, data: dict) -> dict:
        """The request's inpaint fields from the tab's controls."""
        return dict(mask_blur_x=int(data[self.mask_blur]), mask_blur_y=int(data[self.mask_blur]),
                    inpainting_mask_invert=int(data[self.mask_mode] or 0),
                    inpainting_fill=int(data[self.masked_content]), inpaint_full_res=data[self.inpaint_area] == 1,
                    inpaint_full_res_padding=int(data[self.padding]))

    # ---- events ---------------------------------------------------------------------------------------
    def _wire(self) -> None:
        ctx = self.ctx
        for box, counter in ((self.prompt, self.prompt_tokens), (self.negative, self.negative_tokens)):
            box.change(lambda text, steps: ctx.tokens.html(text, steps), [box, self.steps], counter,
                       queue=False, show_progress="hidden", trigger_mode="always_last", api_visibility="private")
        inputs = {self.prompt, self.negative, self.styles, self.sampler, self.scheduler, self.steps, self.width,
                  self.height, self.n_iter, self.batch_size, self.cfg, self.seed, self.subseed, self.subseed_strength,
                  self.clip_skip}
        if self.mode == "img2img":
            inputs |= {self.init_editor, self.resize_mode, self.denoising, self.mask_blur, self.mask_mode,
                       self.masked_content, self.inpaint_area, self.padding}
        else:
            inputs |= {self.enable_hr, self.denoising, *self.hires.values()}
        inputs |= {self.tiling, self.restore_faces, *self.scripts.inputs, *self.controlnet.inputs}
        outputs = [self.status, self.preview, self.gallery, self.infotext, self.records, self.selected, self.job_id]
        self.generate_events = [
            trigger(self.run, inputs, outputs, show_progress="hidden", concurrency_limit=None,
                    api_visibility="private")
            for trigger in (self.generate_btn.click, self.prompt.submit)
        ]
        self.interrupt_btn.click(lambda jid: status_html(ctx.interrupt(jid), "warn"), self.job_id, self.status,
                                 queue=False, show_progress="hidden", api_visibility="private")
        self.skip_btn.click(lambda jid: status_html(ctx.skip(jid), "warn"), self.job_id, self.status,
                            queue=False, show_progress="hidden", api_visibility="private")
        self.random_seed_btn.click(lambda: -1, None, self.seed, queue=False, show_progress="hidden",
                                   api_visibility="private")
        self.reuse_seed_btn.click(self._reuse_seed, [self.records, self.selected, self.seed], self.seed, queue=False,
                                  show_progress="hidden", api_visibility="private")
        self.gallery.select(self._select, self.records, [self.infotext, self.selected], queue=False,
                            show_progress="hidden", api_visibility="private")
        self.on_paste(self.paste_btn.click, self.paste_from_prompt, [self.prompt, self.infotext])
        self.apply_styles_btn.click(self._apply_styles, [self.prompt, self.negative, self.styles],
                                    [self.prompt, self.negative, self.styles, self.status], queue=False,
                                    show_progress="hidden", api_visibility="private")
        self.actions.wire()

    @staticmethod
    def _reuse_seed(records, selected, current):
        if not records:
            return current
        idx = selected if isinstance(selected, int) and 0 <= selected < len(records) else 0
        return records[idx]["seed"]

    @staticmethod
    def _select(records, evt: gr.SelectData):
        idx = evt.index if isinstance(evt.index, int) else 0
        if not records or idx >= len(records):
            return "", 0
        return records[idx]["infotext"], idx

    def _apply_styles(self, prompt, negative, styles):
        if not styles:
            return prompt, negative, styles, status_html("No style selected", "warn")
        try:
            p, n = self.ctx.styles.apply(prompt or "", negative or "", styles)
        except Exception as exc:  # StyleError: unknown style
            return prompt, negative, styles, status_html(str(exc), "error")
        return p, n, [], status_html(f"Applied {', '.join(styles)} to the prompt")

    # ---- the request ----------------------------------------------------------------------------------
    def make_request(self, data: dict):
        """UI values -> GenerationRequest (raises UserError / RequestError with a message for the user)."""
        engine = self.ctx.engine
        prompt, negative = data[self.prompt] or "", data[self.negative] or ""
        styles = [x for x in (data[self.styles] or []) if x]  # applied by the engine, recorded in the infotext

        def as_int(comp, default):
            v = data[comp]
            return default if v is None or v == "" else int(v)

        fields = dict(
            prompt=prompt, negative_prompt=negative, styles=styles,
            seed=as_int(self.seed, -1), subseed=as_int(self.subseed, -1),
            subseed_strength=float(data[self.subseed_strength] or 0.0),
            sampler_name=data[self.sampler] or None, scheduler=data[self.scheduler] or None,
            steps=as_int(self.steps, engine.settings.default_steps), cfg_scale=float(data[self.cfg]),
            width=as_int(self.width, DEFAULT_SIZE), height=as_int(self.height, DEFAULT_SIZE),
            batch_size=as_int(self.batch_size, 1), n_iter=as_int(self.n_iter, 1), clip_skip=as_int(self.clip_skip, 1),
        )
        # controls missing from `data` are off
        fields.update(tiling=bool(data.get(self.tiling)), restore_faces=bool(data.get(self.restore_faces)))
        fields["batch_grid"] = True  # more than one image: A1111's grid first (settings return_grid, grid_save)
        if self.mode == "txt2img" and data.get(self.enable_hr):
            fields.update(enable_hr=True, denoising_strength=float(data[self.denoising]),
                          **{name: data[comp] for name, comp in self.hires.items()})
            fields.update(hr_second_pass_steps=int(fields["hr_second_pass_steps"]),
                          hr_resize_x=int(fields["hr_resize_x"]), hr_resize_y=int(fields["hr_resize_y"]),
                          hr_scale=float(fields["hr_scale"]))
        if self.mode == "img2img":
            init, mask = editor_to_init(data[self.init_editor])
            if init is None:
                raise UserError("Upload an image first: img2img starts from it")
            fields.update(init_images=[init], mask=mask, resize_mode=int(data[self.resize_mode] or 0),
                          denoising_strength=float(data[self.denoising]), **self.inpaint_fields(data))
        check_limits(engine.settings, fields)  # above a setting's maximum: refused, with the setting's name
        fields.update(self.scripts.request_fields(data))
        fields.update(self.controlnet.request_fields(data))
        return engine.request_defaults(**fields)

    def run(self, data: dict):
        ctx, engine = self.ctx, self.ctx.engine
        t0 = time.perf_counter()
        try:
            req = self.make_request(data)
            job = engine.submit(req)
        except QueueFullError as exc:
            yield {self.status: status_html(str(exc), "error")}
            return
        except (UserError, RequestError, SamplerError, CheckpointLoadError, ValueError) as exc:
            yield {self.status: status_html(str(exc), "error")}
            return
        ctx.track(job)
        yield {self.job_id: job.state.id, self.preview: gr.update(visible=False, value=None),
               self.status: status_html(self._queue_text(job), "info", 0.0)}
        shown_step = -1
        try:
            while True:
                try:
                    result = job.result(timeout=POLL_SECONDS)
                    break
                except FutureTimeout:
                    pass
                st = job.state
                out = {self.status: status_html(self._queue_text(job), "info", st.progress)}
                if st.preview is not None and st.preview_step != shown_step:
                    if shown_step < 0:  # the preview takes the gallery's place while sampling
                        out[self.gallery] = gr.update(visible=False)
                    shown_step = st.preview_step
                    out[self.preview] = gr.update(value=st.preview, visible=True)
                yield out
        except CancelledError:
            yield {self.status: status_html("Cancelled before it started", "warn"), self.job_id: None}
            return
        except Exception as exc:  # the job failed in the worker (bad checkpoint, out of memory ...)
            yield {self.status: status_html(f"Failed: {exc}", "error"), self.job_id: None,
                   self.preview: gr.update(visible=False), self.gallery: gr.update(visible=True)}
            return
        finally:
            ctx.forget(job)
        yield self._finish(result, time.perf_counter() - t0)

    def _queue_text(self, job) -> str:
        pos = self.ctx.engine.queue_position(job)
        if pos > 0:
            return f"Waiting in queue: position {pos} of {self.ctx.engine.queue_length()}"
        return progress_text(job.state)

    def _finish(self, result, seconds: float) -> dict:
        records = result_records(result)  # a batch's grid first (marked "grid", its first image's seed), as A1111
        items = [(rec["path"] or rec["image"], record_label(rec)) for rec in records]
        n = sum(not rec.get("grid") for rec in records)
        msg = f"{n} image{'s' if n != 1 else ''} in {seconds:.1f} s" + (" · grid first" if len(records) > n else "")
        kind = "ok"
        if result.interrupted:
            partial = sum("Interrupted: step" in r["infotext"] for r in records if not r.get("grid"))
            msg = f"Interrupted: kept {n} image{'s' if n != 1 else ''}" + \
                (f" ({partial} as far as it got)" if partial else "")
            kind = "warn"
        if result.skipped:
            msg += f" · skipped {result.skipped}"
        if result.paths:
            folder = Path(result.paths[-1]).parent
            msg += f" · saved in {_short(folder, self.ctx.engine.settings.outputs_path)}"
        for w in result.warnings:
            msg += f" · {w}"
        if not records:  # nothing made (interrupted while waiting): the previous result stays on screen
            return {self.status: status_html(msg, kind), self.preview: gr.update(visible=False, value=None),
                    self.gallery: gr.update(visible=True), self.job_id: None}
        return {
            self.status: status_html(msg, kind, 1.0 if not result.interrupted else None),
            self.preview: gr.update(visible=False, value=None),
            self.gallery: gr.update(value=items, visible=True, selected_index=0 if items else None),
            self.infotext: records[0]["infotext"] if records else "",
            self.records: records,
            self.selected: 0,
            self.job_id: None,
        }

    # ---- pasting parameters ---------------------------------------------------------------------------
    def paste_outputs(self) -> list:
        return [*self.fields.values(), *self.controlnet.paste_outputs(), self.variation, self.status,
                self.paste_target]

    def paste_values(self, infotext: str | None) -> list:
        """Values for `paste_outputs()` from an infotext (fields it does not mention are left alone): the
        variation-seed section opens when the pasted strength is above 0, the status line says what could not be
        restored, and `paste_target` names the checkpoint and VAE to switch to."""
        if not has_parameters(infotext):
            note = status_html("No generation parameters found: paste an image's infotext (prompt, then a line "
                               "like 'Steps: 20, Sampler: Euler a, ...') into the prompt box", "warn")
            return [*[gr.skip()] * (len(self.paste_outputs()) - 2), note, None]
        rec = recall(infotext, self.ctx.engine, self.mode, self.fields)
        values = rec.fields
        control, notes = self.controlnet.paste_values(parse_infotext(infotext, defaults=False))
        rec.notes += notes
        opened = gr.Accordion(open=True) if values.get("subseed_strength", 0) > 0 else gr.skip()
        text, kind = rec.notice()
        return [*(values.get(key, gr.skip()) for key in self.fields), *control, opened, status_html(text, kind),
                {"checkpoint": rec.checkpoint, "vae": rec.vae}]

    def paste_from_prompt(self, prompt: str | None, last: str | None) -> list:
        """↙: the infotext pasted into the prompt box; with an empty box, the last result's parameters."""
        return self.paste_values(prompt if (prompt or "").strip() else last)

    def on_paste(self, trigger, fn, inputs, extra_outputs=()):
        """Wire an event that pastes parameters here: `fn` returns `paste_values(...)` and then one value per
        extra output. `webui.ui.build_ui` chains the header's checkpoint/VAE switch to each of these events."""
        event = trigger(fn, inputs, [*self.paste_outputs(), *extra_outputs], api_visibility="private")
        self.paste_events.append(event)
        return event


def _short(path: Path, root: Path) -> str:
    try:
        return str(Path("outputs") / Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def record_image(rec: dict):
    """A record's image for the img2img editor: the saved file, else the in-memory image."""
    if rec.get("path"):
        return rec["path"]
    return rec.get("image")
