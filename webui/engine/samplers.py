"""A1111 sampler and schedule-type names -> diffusers schedulers (facts from diffusers' scheduler overview)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import diffusers

from webui.engine.errors import EngineError


class SamplerError(EngineError, ValueError):
    """An unknown sampler or schedule type; the message lists the valid names."""


@dataclass(frozen=True)
class Sampler:
    name: str
    cls: str
    options: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    default_schedule: str = "Uniform"  # what "Automatic" means for this sampler (A1111 defaults)
    needs: str | None = None  # optional python module


SAMPLERS: tuple[Sampler, ...] = (
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, ("k_dpmpp_2m",), "Karras"),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", {}, ("k_dpmpp_sde",), "Karras", needs="torchsde"),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, ("k_dpmpp_2m_sde",), "Exponential"),
    Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, ("k_dpmpp_3m_sde",), "Exponential"),
    Sampler("DPM++ 2S a", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, ("k_dpmpp_2s_a",), "Karras"),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", {}, ("k_euler_a", "k_euler_ancestral")),
    Sampler("Euler", "EulerDiscreteScheduler", {}, ("k_euler",)),
    Sampler("LMS", "LMSDiscreteScheduler", {}, ("k_lms",)),
    Sampler("Heun", "HeunDiscreteScheduler", {}, ("k_heun",)),
    Sampler("DPM2", "KDPM2DiscreteScheduler", {}, ("k_dpm_2",), "Karras"),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}, ("k_dpm_2_a",), "Karras"),
    Sampler("DDIM", "DDIMScheduler", {}, ("ddim",), "Normal"),
    Sampler("PLMS", "PNDMScheduler", {"skip_prk_steps": True}, ("plms",), "Normal"),
    Sampler("UniPC", "UniPCMultistepScheduler", {}, ("unipc",)),
    Sampler("LCM", "LCMScheduler", {}, ("k_lcm",), "Normal"),
)

# schedule type -> scheduler options (None: the scheduler's own spacing)
SCHEDULES: dict[str, dict] = {
    "Automatic": {},
    "Uniform": {"timestep_spacing": "linspace"},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
    "Normal": {},
}
SCHEDULE_ALIASES = {"automatic": "Automatic", "uniform": "Uniform", "karras": "Karras", "exponential": "Exponential",
                    "beta": "Beta", "sgm_uniform": "SGM Uniform", "normal": "Normal"}


@dataclass(frozen=True)
class SamplerChoice:
    sampler: Sampler
    schedule: str  # resolved, never "Automatic"
    requested_schedule: str


def sampler_names() -> list[str]:
    return [s.name for s in SAMPLERS]


def _accepts(cls_name: str, option: str) -> bool:
    return option in inspect.signature(getattr(diffusers, cls_name).__init__).parameters


def schedule_names() -> list[str]:
    return list(SCHEDULES)


def resolve(sampler_name: str | None, schedule: str | None = None, default: str = "Euler a") -> SamplerChoice:
    """Accept A1111 names, aliases and old combined names ('DPM++ 2M Karras')."""
    name = (sampler_name or default).strip()
    sched = (schedule or "Automatic").strip()
    sched = SCHEDULE_ALIASES.get(sched.lower(), sched)
    by_name = {s.name.lower(): s for s in SAMPLERS}
    for s in SAMPLERS:
        for a in s.aliases:
            by_name.setdefault(a.lower(), s)
    sampler = by_name.get(name.lower())
    if sampler is None:
        for suffix in ("Karras", "Exponential", "SGM Uniform", "Beta", "Uniform"):
            if name.lower().endswith(" " + suffix.lower()):
                base = name[: -len(suffix) - 1].strip()
                if base.lower() in by_name:
                    sampler = by_name[base.lower()]
                    if sched == "Automatic":
                        sched = suffix
                    break
    if sampler is None:
        raise SamplerError(f"Unknown sampler {sampler_name!r}. Valid samplers: {', '.join(sampler_names())}")
    if sched not in SCHEDULES:
        raise SamplerError(f"Unknown schedule type {schedule!r}. Valid schedule types: {', '.join(SCHEDULES)}")
    resolved = sampler.default_schedule if sched == "Automatic" else sched
    for opt in SCHEDULES[resolved]:
        if not _accepts(sampler.cls, opt):
            if sched == "Automatic":
                resolved = "Normal"
                break
            raise SamplerError(f"Schedule type {resolved!r} is not available for sampler {sampler.name!r}")
    if sampler.needs:
        try:
            __import__(sampler.needs)
        except ImportError as exc:
            raise SamplerError(f"Sampler {sampler.name!r} needs the Python package {sampler.needs!r} ({exc})") from exc
    return SamplerChoice(sampler, resolved, sched)


def make_scheduler(choice: SamplerChoice, base_config: dict):
    """A fresh diffusers scheduler from the model's scheduler config plus the sampler's options."""
    cls = getattr(diffusers, choice.sampler.cls)
    config = dict(base_config)
    for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        config.pop(k, None)
    config.update(choice.sampler.options)
    config.update(SCHEDULES[choice.schedule])
    return cls.from_config(config)
