"""The worker side of a generation job: a planned job (webui/engine/plan.py) runs `prepare` once, then every batch
goes through the named stages in order:

    sample -> second_pass (hires fix) -> decode -> restore_faces -> overlay (inpainting) -> postprocess
    (extensions' image hooks) -> save

A later feature adds a stage to STAGES, not a branch inside one function.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from webui.engine import hires as hires_mod
from webui.engine.generation import Batch, SamplingSpec, check_latents, decode_latents, sample_batch
from webui.engine.hooks import ImageContext
from webui.engine.grids import image_grid, prepend_grid
from webui.engine.infotext import build_infotext
from webui.engine.inpaint import InpaintPlan, mask_from_image, plan_inpaint
from webui.engine.preview import latent_preview
from webui.engine.requests import GenerationResult, RequestError
from webui.engine.resize import resize_image
from webui.engine.tiling import seamless

if TYPE_CHECKING:
    from webui.engine.jobs import JobState
    from webui.engine.plan import JobPlan

VERSION = "latent-studio-0.1.0"


@dataclass
class BatchWork:
    """One batch on its way through the stages."""
    batch: Batch
    first: int  # index of its first image in the job
    latents: object = None
    first_pass_only: bool = False  # hires fix interrupted or skipped: the first pass's images are kept
    stopped_at: str | None = None  # interrupted while sampling: "step k of n" (the image as far as it got)
    images: list[Image.Image] = field(default_factory=list)
    contexts: list[ImageContext] = field(default_factory=list)


class GenerationJob:
    STAGES = ("sample", "second_pass", "decode", "restore_faces", "overlay", "postprocess", "save")

    def __init__(self, engine, plan: JobPlan, state: JobState, inspector=None):
        """`engine`: the Engine that runs the job (its models, device, networks, upscalers, hooks and outputs; not
        imported here, since the engine imports this module). `inspector`: an Inspect run's sampling hooks
        (webui/engine/inspect/sampling.py), given to the first pass only; None for a plain generation."""
        self.engine, self.plan, self.state = engine, plan, state
        self.inspector = inspector
        self.req = plan.request

    def run(self) -> GenerationResult:
        t_start = time.perf_counter()
        self.prepare()
        t_model = self.t_model
        self.state.job_count = self.plan.n_iter
        try:
            with seamless(self.model, enabled=self.req.tiling):  # this job's convs only, restored on any exit
                for number, sl in enumerate(self.plan.batch_slices()):
                    if self.state.interrupted:
                        break
                    self.state.job_no = number
                    work = self.batch(sl)
                    for name in self.STAGES:
                        if not getattr(self, name)(work):
                            break
        finally:
            self._switch(self.first_model)  # the checkpoint chosen in the UI stays the active one
        self.grid()
        result = self.result
        result.warnings += [w for w in self.nets.warnings if w not in result.warnings]
        result.interrupted = self.state.interrupted
        result.timings = {"model": t_model - t_start, "total": time.perf_counter() - t_start}
        return result

    # ---- once per job --------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """The model, sizes, init images and mask, networks, and the infotext parameters all images share."""
        eng, plan, req = self.engine, self.plan, self.req
        self.model = eng.ensure_model(plan.checkpoint)
        self.t_model = time.perf_counter()
        width = req.width or self.model.spec.native_size[0]
        height = req.height or self.model.spec.native_size[1]
        self.spec = SamplingSpec(plan.sampler, req.steps, req.cfg_scale, width, height, req.subseed_strength,
                                 req.denoising_strength, req.clip_skip, req.eta)
        self.inits = [resize_image(im, width, height, req.resize_mode) for im in req.init_images]
        self.inpaint = self._inpaint(width, height)
        self.texts, self.neg_texts = plan.prompts.encoder_texts()
        self.hr_texts = (plan.hr_prompts or plan.prompts).encoder_texts()
        # LoRAs loaded, embeddings loaded, the job's VAE in place (NetworkError is a RequestError)
        self.net_texts = self.texts + self.neg_texts + self.hr_texts[0] + self.hr_texts[1]
        self.nets = eng.networks.prepare(self.model, eng.device, plan.loras, self.net_texts, plan.vae)
        self.first_model = self.model
        self.switching = plan.hires is not None and plan.hires.checkpoint is not None
        if self.switching:
            self._check_hires_checkpoint(plan.hires)
        self.control, control_params = eng.controlnets.prepare(plan.controlnet, self.model, eng.device, (width, height),
                                                               self.inits)
        self.base_params = {**self._params(width, height), **control_params}
        self.params, size = dict(self.base_params), (width, height)
        if plan.hires is not None:
            size = hires_mod.target_size(req, width, height, eng.settings.max_image_side)
            self.hr_spec = replace(self.spec, choice=plan.hires.sampler, steps=plan.hires.steps,
                                   cfg_scale=plan.hires.cfg_scale, width=size[0], height=size[1],
                                   denoising_strength=plan.hires.denoising_strength)
            self.params.update(hires_mod.infotext_params(req, plan.hires, plan.sampler))
        self.result = GenerationResult(width=size[0], height=size[1], model_title=self.model.title,
                                       params=dict(self.params), warnings=list(plan.prompts.warnings))

    def _check_hires_checkpoint(self, hires) -> None:
        """A latent upscale hands the latents on as they are: both checkpoints must share a latent space."""
        from webui.engine.checkpoints.loader import inspect_checkpoint

        if self.req.tiling:
            raise RequestError("tiling with a second pass on another checkpoint is not supported yet")
        family = inspect_checkpoint(hires.checkpoint.path).family
        if hires.latent and (family == "sdxl") != (self.model.spec.family == "sdxl"):
            raise RequestError(f"hr_checkpoint_name: {hires.checkpoint.title} ({family}) and {self.model.title} "
                               f"({self.model.spec.family}) do not share a latent space; choose a pixel upscaler "
                               f"(e.g. Lanczos) instead of {hires.upscaler}")

    def _switch(self, checkpoint) -> None:
        """Hires fix on another checkpoint: make `checkpoint` (a CheckpointInfo, or the first pass's model) the
        model the stages use, from the RAM cache or from disk, with the job's LoRAs, embeddings and VAE on it."""
        if not self.switching:
            return
        if checkpoint is self.first_model:
            checkpoint = str(checkpoint.path)  # the same file, even if the cache let go of that object
        model = self.engine.ensure_model(checkpoint)
        if model is not self.model:
            self.model = model
            self.nets = self.engine.networks.prepare(model, self.engine.device, self.plan.loras, self.net_texts,
                                                     self.plan.vae)

    def _inpaint(self, width: int, height: int) -> InpaintPlan | None:
        req = self.req
        if req.mask is None or not self.inits:
            return None
        mask = mask_from_image(req.mask)
        if req.inpainting_mask_invert:
            mask = ImageOps.invert(mask)
        mask = resize_image(mask, width, height, req.resize_mode).convert("L")
        return plan_inpaint(self.inits, mask, width, height, blur_x=req.mask_blur_x, blur_y=req.mask_blur_y,
                            fill=req.inpainting_fill, only_masked=req.inpaint_full_res,
                            padding=req.inpaint_full_res_padding)

    def _params(self, width: int, height: int) -> dict:
        model, req, nets, plan = self.model, self.req, self.nets, self.plan
        inpaint = self.inpaint.params if self.inpaint else {}
        return {
            "Steps": req.steps, "Sampler": plan.sampler.sampler.name, "Schedule type": plan.sampler.schedule,
            "CFG scale": req.cfg_scale, "Seed": None, "Size": f"{width}x{height}",
            "Model hash": (model.sha256 or "")[:10] or None, "Model": Path(model.title.split(" [")[0]).stem,
            "VAE hash": nets.vae_hash, "VAE": nets.vae_name,
            "Variation seed": None, "Variation seed strength": req.subseed_strength or None,
            "Denoising strength": req.denoising_strength if self.inits else None,
            "Clip skip": req.clip_skip if req.clip_skip > 1 else None, "RNG": "CPU",
            "Tiling": True if req.tiling else None,
            "Face restoration": plan.faces.kind if plan.faces else None,
            **inpaint, "Mask mode": "Inpaint not masked" if self.inpaint and req.inpainting_mask_invert else None,
            **plan.prompts.params, **nets.params, **plan.hook_params, **req.extra_generation_params,
            "Version": VERSION,
        }

    def batch(self, sl: slice) -> BatchWork:
        plan, inits = self.plan, self.inpaint.inits if self.inpaint else self.inits
        batch = Batch(plan.seeds[sl], plan.subseeds[sl], self.texts[sl], self.neg_texts[sl],
                      init_images=[inits[i % len(inits)] for i in range(sl.start, sl.stop)] if inits else None,
                      mask=self.inpaint.mask if self.inpaint else self.req.mask,
                      latent_fill=self.inpaint.latent_fill if self.inpaint else None, control=self._control(False))
        return BatchWork(batch, sl.start)

    def _control(self, second: bool):
        """The ControlNet units of the first or (hires fix) second pass, at that pass's size."""
        if self.control is None or self.plan.hires is None:
            return self.control
        spec = self.hr_spec if second else self.spec
        return self.control.for_pass(second, (spec.width, spec.height))

    # ---- the stages: each returns False to stop this batch -------------------------------------------------
    def sample(self, work: BatchWork) -> bool:
        self._switch(self.first_model)  # back from the previous batch's hires checkpoint, if any
        self.nets.activate(self.plan.prompts.networks[work.first:work.first + len(work.batch.seeds)])
        work.latents = sample_batch(self.model, self.engine.device, self.spec, work.batch, self.state,
                                    self._on_step, self.inspector)
        if work.latents is None and self.state.skipped and not self.state.interrupted:
            self.state.skipped = False
            self.result.skipped += len(work.batch.seeds)
        elif work.latents is not None and self.state.interrupted:
            work.stopped_at = f"step {self.state.sampling_step} of {self.state.sampling_steps}"
        return work.latents is not None

    def second_pass(self, work: BatchWork) -> bool:
        """Hires fix: upscale the first pass (latents, or decoded pixels) and sample again as img2img. Interrupted
        or skipped, the first pass's images go on through the stages (and are saved)."""
        hires = self.plan.hires
        if hires is None:
            return True
        if work.stopped_at is not None:  # the first pass was interrupted: its image as far as it got
            work.first_pass_only = True
            return True
        spec, batch = self.hr_spec, work.batch
        if hires.latent:
            start = dict(init_latents=hires_mod.upscale_latents(work.latents, hires.upscaler, spec.width, spec.height))
        else:
            images = decode_latents(self.model, work.latents, self.engine.device, warnings=self.result.warnings)
            upscale = self.engine.upscalers.upscale
            start = dict(init_images=[upscale(im, hires.upscaler, spec.width, spec.height) for im in images])
        if hires.checkpoint is not None:  # as A1111: the first pass decoded by its own model, then the switch
            self._switch(hires.checkpoint)
        second = replace(batch, prompts=self.hr_texts[0][work.first:work.first + len(batch.seeds)],
                         negative_prompts=self.hr_texts[1][work.first:work.first + len(batch.seeds)],
                         control=self._control(True), **start)
        hr_networks = (self.plan.hr_prompts or self.plan.prompts).networks
        self.nets.activate(hr_networks[work.first:work.first + len(batch.seeds)])
        latents = sample_batch(self.model, self.engine.device, spec, second, self.state, self._on_step)
        if latents is None or self.state.interrupted:
            self.state.skipped, work.first_pass_only = False, True
            self._switch(self.first_model)  # the first pass's latents are decoded by their own model
        else:
            work.latents = latents
        return True

    def decode(self, work: BatchWork) -> bool:
        in_use = f"checkpoint {self.model.title}, {self.nets.describe()}"
        check_latents(work.latents, in_use, self.engine.device.dtype)
        work.images = decode_latents(self.model, work.latents, self.engine.device, in_use=in_use,
                                     warnings=self.result.warnings)
        return True

    def restore_faces(self, work: BatchWork) -> bool:
        """restore_faces: every face found, restored by the planned model (as A1111: after the last pass, before
        the inpainting overlay). An image with no face found stays as it is, with a warning."""
        faces = self.plan.faces
        if faces is None:
            return True
        for j, image in enumerate(work.images):
            work.images[j], found = self.engine.faces.restore(image, faces.kind, weight=faces.weight)
            if not found:
                self.result.warnings.append(f"restore_faces: no face found in image {work.first + j + 1}")
        return True

    def overlay(self, work: BatchWork) -> bool:
        """Inpainting: the generated area put back over the original, outside the blurred mask the original."""
        if self.inpaint is not None:
            overlays = self.inpaint.overlays
            work.images = [overlays[(work.first + j) % len(overlays)].apply(image)
                           for j, image in enumerate(work.images)]
        return True

    def postprocess(self, work: BatchWork) -> bool:
        plan, hooks = self.plan, self.engine.hooks
        for j, image in enumerate(work.images):
            k = work.first + j
            params = dict(self.base_params if work.first_pass_only else self.params, Seed=plan.seeds[k])
            if work.stopped_at is not None:
                params["Interrupted"] = work.stopped_at
            if self.req.subseed_strength > 0:
                params["Variation seed"] = plan.subseeds[k]
            ctx = ImageContext(self.req, k, plan.seeds[k], plan.prompts.prompts[k],
                               plan.prompts.negative_prompts[k], params)
            work.images[j] = hooks.postprocess_image(image, ctx)
            work.contexts.append(ctx)
        return True

    def save(self, work: BatchWork) -> bool:
        eng, result = self.engine, self.result
        for image, ctx in zip(work.images, work.contexts):
            info = build_infotext(ctx.prompt, ctx.negative_prompt, ctx.params)
            if self.req.save_images and eng.settings.save_images:
                path = eng.outputs.save(image, info, ctx.seed, self.plan.mode, self.req.outpath)
                result.paths.append(path)
                eng.hooks.saved(path, info, ctx)
            result.images.append(image)
            result.infotexts.append(info)
            result.seeds.append(ctx.seed)
            result.subseeds.append(self.plan.subseeds[ctx.index])
            result.prompts.append(ctx.prompt)
            result.negative_prompts.append(ctx.negative_prompt)
        return True

    # ---- once per job, after the batches ---------------------------------------------------------------------
    def grid(self) -> None:
        """A1111's batch grid: with more than one image, a grid of them saved in outputs/<mode>-grids/ (setting
        grid_save) and put first among the results (return_grid), when the request asks for it (batch_grid)."""
        settings, result = self.engine.settings, self.result
        save = settings.grid_save and self.req.save_images
        if not self.req.batch_grid or len(result.images) < 2 or not (save or settings.return_grid):
            return
        image = image_grid(result.images, rows=None)
        info = result.infotexts[0]
        path = self.engine.outputs.save_grid(image, info, self.plan.mode) if save else None
        if settings.return_grid:
            prepend_grid(result, image, info, path)

    def _on_step(self, state: JobState, step_index: int, latents) -> None:
        every = self.engine.settings.preview_every
        if every > 0 and (step_index + 1) % every == 0:
            state.preview = latent_preview(self.model, latents)
            state.preview_step = step_index + 1
        self.engine.hooks.step(state, step_index, latents)
