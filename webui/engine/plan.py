"""A job resolved once, when it is submitted: the typed plan the worker's stages run. Everything that can be wrong
with a request (unknown checkpoint, sampler, style, wildcard folder, LoRA or VAE; a value out of range) fails here,
before the queue, with an EngineError naming it.

    plan = planner.plan(request)   # in the caller's thread
    ... queue ... GenerationJob(engine, plan, state).run()   # in the worker (webui/engine/stages.py)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from webui.engine import hires as hires_mod
from webui.engine import noise
from webui.engine.hires import HiresPlan
from webui.engine.prompts.prepare import PreparedPrompts, prepare_prompts
from webui.engine.requests import GenerationRequest, RequestError, check_text
from webui.engine.samplers import SamplerChoice, resolve

if TYPE_CHECKING:
    from webui.engine.checkpoints.registry import CheckpointInfo
    from webui.engine.networks.lora import LoraInfo


@dataclass(frozen=True)
class FacePlan:
    kind: str  # GFPGAN, CodeFormer or RestoreFormer: an installed one
    weight: float  # CodeFormer's fidelity (code_former_weight)


@dataclass
class JobPlan:
    request: GenerationRequest  # as the request hooks left it
    mode: str  # txt2img | img2img
    checkpoint: CheckpointInfo | None  # None: the model active when the job runs (or the default one)
    sampler: SamplerChoice
    prompts: PreparedPrompts  # per image: styles applied, wildcards expanded by seed, <lora:...> pulled out
    subseeds: list[int]
    loras: dict[str, LoraInfo]  # name as written in the prompts -> its file
    vae: str | None  # the job's own VAE choice (override_settings.sd_vae); None: the current "SD VAE"
    hook_params: dict = field(default_factory=dict)  # infotext additions from the extensions' infotext hooks
    hires: HiresPlan | None = None  # the second pass (txt2img with enable_hr)
    hr_prompts: PreparedPrompts | None = None  # its own prompts (hr_prompt / hr_negative_prompt), else the job's
    faces: FacePlan | None = None  # restore_faces: which restorer, with which CodeFormer weight
    controlnet: list = field(default_factory=list)  # the active ControlNet units (controlnet.manager.PlannedUnit)

    @property
    def seeds(self) -> list[int]:
        return self.prompts.seeds

    @property
    def n_iter(self) -> int:
        """Batches to run (combinatorial wildcards can make more or fewer images than batch_size x n_iter)."""
        return -(-len(self.seeds) // self.request.batch_size)

    def batch_slices(self) -> list[slice]:
        size = self.request.batch_size
        return [slice(i * size, min(len(self.seeds), (i + 1) * size)) for i in range(self.n_iter)]


class Planner:
    """Turns requests into plans with the engine's registries (passed in, never looked up)."""

    def __init__(self, settings, models, styles, wildcards, networks, hooks, upscalers, faces, controlnets=None):
        self.settings, self.models, self.styles = settings, models, styles
        self.wildcards, self.networks, self.hooks = wildcards, networks, hooks
        self.upscalers, self.faces, self.controlnets = upscalers, faces, controlnets

    def plan(self, request: GenerationRequest) -> JobPlan:
        req = self.hooks.transform_request(replace(request))  # hooks change a copy, never the caller's request
        req.validate(self.settings.max_image_side, self.settings.max_batch_images)
        sampler = resolve(req.sampler_name, req.scheduler, self.settings.default_sampler)  # SamplerError
        checkpoint = self.models.resolve(req.checkpoint) if req.checkpoint else None
        vae = (req.override_settings or {}).get("sd_vae") or None
        if vae is not None:
            vae = self.networks.vaes.validate(vae)
        prompts = self._prompts(req)
        hires, hr_prompts = self._hires(req, sampler, prompts) if req.enable_hr else (None, None)
        loras, warnings = self.networks.resolve_loras(prompts.networks + (hr_prompts.networks if hr_prompts else []))
        prompts.warnings += [w for w in warnings if w not in prompts.warnings]
        subseed = noise.fix_seed(req.subseed)
        controlnet = self.controlnets.plan(req) if self.controlnets is not None and req.controlnet_units else []
        return JobPlan(req, "img2img" if req.is_img2img else "txt2img", checkpoint, sampler, prompts,
                       [subseed + i for i in range(len(prompts.seeds))], loras, vae, self.hooks.infotext_params(req),
                       hires, hr_prompts, self._faces(req) if req.restore_faces else None, controlnet)

    def _faces(self, req: GenerationRequest) -> FacePlan:
        """A1111's face_restoration_model and code_former_weight, from override_settings or the settings; a model
        of that kind must be installed (never a silent no-op)."""
        overrides = req.override_settings or {}
        kind = overrides.get("face_restoration_model") or self.settings.face_restoration_model
        weight = overrides.get("code_former_weight", self.settings.code_former_weight)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise RequestError(f"code_former_weight must be a number from 0 to 1 (got {weight!r})")
        return FacePlan(self.faces.check(kind, "restore_faces"), float(weight))

    def _hires(self, req: GenerationRequest, sampler: SamplerChoice,
               prompts: PreparedPrompts) -> tuple[HiresPlan, PreparedPrompts | None]:
        hires_mod.check_fields(req)
        if req.width and req.height:  # else the model's native size decides, when the job runs
            hires_mod.target_size(req, req.width, req.height, self.settings.max_image_side)
        checkpoint = None
        if not hires_mod.same(req.hr_checkpoint_name):  # another checkpoint, unless it is the first pass's
            checkpoint = self.models.resolve(req.hr_checkpoint_name, allow_path=False)
            if req.checkpoint and self.models.resolve(req.checkpoint).title == checkpoint.title:
                checkpoint = None
        second = sampler
        if not (hires_mod.same(req.hr_sampler_name) and hires_mod.same(req.hr_scheduler)):
            second = resolve(req.hr_sampler_name if not hires_mod.same(req.hr_sampler_name) else req.sampler_name,
                             req.hr_scheduler if not hires_mod.same(req.hr_scheduler) else req.scheduler,
                             self.settings.default_sampler)
        plan = HiresPlan(hires_mod.upscaler_name(req.hr_upscaler, self.upscalers), req.hr_second_pass_steps or req.steps, second,
                         req.cfg_scale if req.hr_cfg is None else float(req.hr_cfg), req.denoising_strength,
                         checkpoint)
        if not (req.hr_prompt or req.hr_negative_prompt):
            return plan, None
        check_text("hr_prompt", req.hr_prompt)
        check_text("hr_negative_prompt", req.hr_negative_prompt)
        return plan, prepare_prompts(req.hr_prompt or req.prompt, req.hr_negative_prompt or req.negative_prompt,
                                     req.styles, prompts.seeds, self.styles, self.wildcards, False,
                                     self.settings.max_combinations)

    def _prompts(self, req: GenerationRequest) -> PreparedPrompts:
        seed = noise.fix_seed(req.seed)
        prompt, negative = self.hooks.transform_prompts(req.prompt, req.negative_prompt, req)
        seeds = [seed + i for i in range(req.batch_size * req.n_iter)]
        return prepare_prompts(prompt, negative, req.styles, seeds, self.styles, self.wildcards, req.combinatorial,
                               self.settings.max_combinations)
