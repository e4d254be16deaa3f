"""A job resolved once, when it is submitted: the typed plan the worker's stages run. Everything that can be wrong
with a request (unknown checkpoint, sampler, style, wildcard folder, LoRA or VAE; a value out of range) fails here,
before the queue, with an EngineError naming it.

    plan = planner.plan(request)   # in the caller's thread
    ... queue ... GenerationJob(engine, plan, state).run()   # in the worker (webui/engine/stages.py)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from webui.engine import noise
from webui.engine.prompts.prepare import PreparedPrompts, prepare_prompts
from webui.engine.requests import GenerationRequest
from webui.engine.samplers import SamplerChoice, resolve

if TYPE_CHECKING:
    from webui.engine.checkpoints.registry import CheckpointInfo
    from webui.engine.networks.lora import LoraInfo


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

    def __init__(self, settings, models, styles, wildcards, networks, hooks):
        self.settings, self.models, self.styles = settings, models, styles
        self.wildcards, self.networks, self.hooks = wildcards, networks, hooks

    def plan(self, request: GenerationRequest) -> JobPlan:
        req = self.hooks.transform_request(replace(request))  # hooks change a copy, never the caller's request
        req.validate(self.settings.max_image_side, self.settings.max_batch_images)
        sampler = resolve(req.sampler_name, req.scheduler, self.settings.default_sampler)  # SamplerError
        checkpoint = self.models.resolve(req.checkpoint) if req.checkpoint else None
        vae = (req.override_settings or {}).get("sd_vae") or None
        if vae is not None:
            vae = self.networks.vaes.validate(vae)
        prompts = self._prompts(req)
        loras, warnings = self.networks.resolve_loras(prompts.networks)
        prompts.warnings += [w for w in warnings if w not in prompts.warnings]
        subseed = noise.fix_seed(req.subseed)
        return JobPlan(req, "img2img" if req.is_img2img else "txt2img", checkpoint, sampler, prompts,
                       [subseed + i for i in range(len(prompts.seeds))], loras, vae, self.hooks.infotext_params(req))

    def _prompts(self, req: GenerationRequest) -> PreparedPrompts:
        seed = noise.fix_seed(req.seed)
        prompt, negative = self.hooks.transform_prompts(req.prompt, req.negative_prompt, req)
        seeds = [seed + i for i in range(req.batch_size * req.n_iter)]
        return prepare_prompts(prompt, negative, req.styles, seeds, self.styles, self.wildcards, req.combinatorial,
                               self.settings.max_combinations)
