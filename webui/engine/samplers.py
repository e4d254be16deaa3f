"""A1111 1.10 sampler and schedule-type names -> diffusers schedulers stepping over A1111's schedules.

Every A1111 sampler we have takes every schedule type, as A1111's k-diffusion samplers do: the schedule is a sigma
list (schedules.py) the diffusers scheduler steps over (sigma_schedulers.py). A1111's timestep samplers keep their
own evenly spaced timesteps under "Automatic": DDIM (any other schedule type is applied, DDIM being an ancestral
Euler step in sigma space) and PLMS (its formula needs even steps, so, as in A1111, the schedule type is recorded but
not used).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import diffusers

from webui.engine import schedules
from webui.engine.errors import EngineError
from webui.engine.infotext import SCHEDULER_NAMES
from webui.engine.sigma_schedulers import OURS, on_sigma_list


class SamplerError(EngineError, ValueError):
    """An unknown or unavailable sampler or schedule type; the message lists the valid names."""


@dataclass(frozen=True)
class Sampler:
    name: str
    cls: str | None  # the scheduler class stepping over a sigma schedule (diffusers' or ours); None: PLMS
    options: dict
    aliases: tuple[str, ...]
    default_schedule: str | None = None  # what "Automatic" means in A1111 (its option "scheduler"); None: Uniform
    own_timesteps: str | None = None  # DDIM, PLMS: the diffusers class used with "Automatic"
    discard_penultimate: bool = False  # A1111's discard_next_to_last_sigma
    needs: str | None = None  # optional python module


_MULTISTEP, _SDE = "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}

# A1111 1.10's samplers in its order, less those in UNAVAILABLE
SAMPLERS: tuple[Sampler, ...] = (
    Sampler("DPM++ 2M", _MULTISTEP, {"algorithm_type": "dpmsolver++", "solver_order": 2}, ("k_dpmpp_2m",), "Karras"),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", {}, ("k_dpmpp_sde",), "Karras", needs="torchsde"),
    Sampler("DPM++ 2M SDE", _MULTISTEP, {**_SDE, "solver_order": 2}, ("k_dpmpp_2m_sde",), "Exponential"),
    Sampler("DPM++ 2M SDE Heun", _MULTISTEP, {**_SDE, "solver_order": 2, "solver_type": "heun"},
            ("k_dpmpp_2m_sde_heun",), "Exponential"),
    # diffusers' single-step DPM-Solver++(2S) without the ancestral noise: an approximation
    Sampler("DPM++ 2S a", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                           "lower_order_final": True}, ("k_dpmpp_2s_a",), "Karras"),
    Sampler("DPM++ 3M SDE", _MULTISTEP, {**_SDE, "solver_order": 3}, ("k_dpmpp_3m_sde",), "Exponential",
            discard_penultimate=True),
    Sampler("Euler a", "AncestralEuler", {}, ("k_euler_a", "k_euler_ancestral")),
    Sampler("Euler", "EulerDiscreteScheduler", {}, ("k_euler",)),
    Sampler("LMS", "LMSDiscreteScheduler", {}, ("k_lms",)),
    Sampler("Heun", "HeunDiscreteScheduler", {}, ("k_heun",)),
    Sampler("DPM2", "KDPM2DiscreteScheduler", {}, ("k_dpm_2",), "Karras", discard_penultimate=True),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}, ("k_dpm_2_a",), "Karras", discard_penultimate=True),
    Sampler("DDIM", "DDIMOnSigmas", {}, ("ddim",), own_timesteps="DDIMScheduler"),
    Sampler("PLMS", None, {"skip_prk_steps": True}, ("plms",), own_timesteps="PNDMScheduler"),
    Sampler("UniPC", "UniPCMultistepScheduler", {}, ("unipc",)),
    Sampler("LCM", "LCMOnSigmas", {}, ("k_lcm",)),
)

# A1111 1.10 samplers with no faithful diffusers counterpart: DPM fast/adaptive are DPM-Solver with their own step
# sizes (adaptive: a number of steps known only while sampling), Restart re-noises and re-runs parts of the
# schedule, DDIM CFG++ needs the unguided noise prediction the pipeline never gives the scheduler.
UNAVAILABLE: dict[str, tuple[str, ...]] = {
    "DPM fast": ("k_dpm_fast",), "DPM adaptive": ("k_dpm_ad",), "Restart": ("restart",), "DDIM CFG++": ("ddim_cfgpp",),
}

SCHEDULE_LABELS = [label for _, label, _ in SCHEDULER_NAMES]  # A1111's order, "Automatic" first
_SCHEDULE_BY_NAME = {n.lower(): label for name, label, aliases in SCHEDULER_NAMES for n in (label, name, *aliases)}
_NEED_INNER_MODEL = {"Uniform", "SGM Uniform", "Simple", "Normal", "DDIM", "Beta"}  # A1111's flag, for the API list


@dataclass(frozen=True)
class SamplerChoice:
    sampler: Sampler
    schedule: str  # as A1111 writes "Schedule type": the sampler's default for "Automatic" where it has one
    requested_schedule: str

    @property
    def sigma_schedule(self) -> str | None:
        """The schedule the steps follow; None: the sampler's own evenly spaced timesteps (DDIM, PLMS)."""
        s = self.sampler
        if s.cls is None or (s.own_timesteps and self.requested_schedule == "Automatic"):
            return None
        return "Uniform" if self.schedule == "Automatic" else self.schedule


def _usable(s: Sampler) -> bool:
    return s.needs is None or importlib.util.find_spec(s.needs) is not None


def sampler_names() -> list[str]:
    return [s.name for s in SAMPLERS if _usable(s)]


def schedule_names() -> list[str]:
    return list(SCHEDULE_LABELS)


def sampler_items() -> list[dict]:
    """/sdapi/v1/samplers in A1111's shape; options as A1111 lists them (its default schedule)."""
    return [{"name": s.name, "aliases": list(s.aliases),
             "options": {"scheduler": s.default_schedule.lower()} if s.default_schedule else {}}
            for s in SAMPLERS if _usable(s)]


def schedule_items() -> list[dict]:
    """/sdapi/v1/schedulers in A1111's shape."""
    return [{"name": name, "label": label, "aliases": list(aliases) or None,
             "default_rho": {"Karras": 7.0, "Polyexponential": 1.0}.get(label, -1.0),
             "need_inner_model": label in _NEED_INNER_MODEL} for name, label, aliases in SCHEDULER_NAMES]


def _lookup(name: str) -> Sampler | None:
    key = name.strip().lower()
    return next((s for s in SAMPLERS if key == s.name.lower() or key in s.aliases), None)


def _split(name: str) -> tuple[str, str | None]:
    """An old combined name ('DPM++ 2M Karras', 'Euler a sgm_uniform') -> (sampler, schedule label), as A1111's
    ``get_sampler_and_scheduler``; (name, None) when it has no schedule suffix."""
    lowered = name.strip().lower()
    for option in sorted(_SCHEDULE_BY_NAME, key=len, reverse=True):
        if lowered.endswith(" " + option):
            return name.strip()[: -len(option) - 1].strip(), _SCHEDULE_BY_NAME[option]
    return name, None


def _unavailable(name: str) -> str | None:
    key = name.strip().lower()
    return next((n for n, aliases in UNAVAILABLE.items() if key == n.lower() or key in aliases), None)


def resolve(sampler_name: str | None, schedule: str | None = None, default: str = "Euler a") -> SamplerChoice:
    """Accept A1111 names, aliases and old combined names ('DPM++ 2M Karras'; the name's schedule wins, as A1111)."""
    name = (sampler_name or default).strip()
    requested = _SCHEDULE_BY_NAME.get((schedule or "Automatic").strip().lower())
    sampler = _lookup(name)
    if sampler is None:
        name, suffix = _split(name)
        sampler = _lookup(name) if suffix else None
        requested = suffix if sampler else requested
    if sampler is None:
        missing = _unavailable(name)
        if missing:
            raise SamplerError(f"Sampler {missing!r} is not available in Latent Studio; available: "
                               f"{', '.join(sampler_names())}")
        raise SamplerError(f"Unknown sampler {sampler_name!r}. Valid samplers: {', '.join(sampler_names())}")
    if requested is None:
        raise SamplerError(f"Unknown schedule type {schedule!r}. Valid schedule types: {', '.join(SCHEDULE_LABELS)}")
    if not _usable(sampler):
        raise SamplerError(f"Sampler {sampler.name!r} needs the Python package {sampler.needs!r}; available: "
                           f"{', '.join(sampler_names())}")
    shown = requested if requested != "Automatic" else (sampler.default_schedule or "Automatic")
    return SamplerChoice(sampler, shown, requested)


# a model's own schedule settings, replaced by the chosen schedule
_SCHEDULE_KEYS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas",
                  "timestep_spacing")


def make_scheduler(choice: SamplerChoice, base_config: dict, family: str | None = None):
    """A fresh diffusers scheduler from the model's scheduler config plus the sampler's options, stepping over the
    chosen schedule. ``family`` ("sdxl", ...) picks Align Your Steps' list; without it a config written for
    EulerDiscreteScheduler (SDXL's) is taken for SDXL."""
    sampler, schedule = choice.sampler, choice.sigma_schedule
    config = {**base_config, **sampler.options}
    if schedule is None:
        return getattr(diffusers, sampler.own_timesteps).from_config(config)
    config = {k: v for k, v in config.items() if k not in _SCHEDULE_KEYS}
    # linspace: Euler-style schedulers then start from noise * sigma_max, as k-diffusion does
    scheduler = _sigma_class(sampler.cls).from_config({**config, "use_karras_sigmas": True,
                                                       "timestep_spacing": "linspace"})
    sdxl = (family or ("sdxl" if base_config.get("_class_name") == "EulerDiscreteScheduler" else "")) == "sdxl"
    scheduler.sigma_list = functools.partial(schedules.sigmas, schedule, lv=schedules.NoiseLevels(
        scheduler.alphas_cumprod), sdxl=sdxl, discard_penultimate=sampler.discard_penultimate)
    return scheduler


def _sigma_class(name: str) -> type:
    return OURS.get(name) or on_sigma_list(getattr(diffusers, name))
