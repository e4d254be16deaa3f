"""The picture at every step: after each sampler step, the noisy latents and the scheduler's predicted clean image
(x0, what `LastDenoised` records from `scheduler.step`), and the noise level the step started from. Latents are
kept on the CPU (4 x h/8 x w/8 floats a step) and decoded after sampling: the cheap linear preview or the VAE."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class StepRecord:
    step: int  # 1-based
    timestep: float
    sigma: float  # the noise level this step started from
    latents: torch.Tensor  # [c, h, w] noisy latents after the step
    x0: torch.Tensor  # [c, h, w] the predicted clean latents


@dataclass
class StepRecorder:
    """Fed by the step callback; `row`: the image of the batch to record."""
    row: int = 0
    records: list[StepRecord] = field(default_factory=list)

    def record(self, scheduler, step_index: int, latents: torch.Tensor, x0: torch.Tensor | None) -> None:
        x0 = latents if x0 is None else x0
        timestep, sigma = noise_level(scheduler, step_index)
        self.records.append(StepRecord(step_index + 1, timestep, sigma,
                                       latents[self.row].detach().float().cpu().clone(),
                                       x0[self.row].detach().float().cpu().clone()))

    def sigmas(self) -> list[float]:
        return [r.sigma for r in self.records]


def noise_level(scheduler, step_index: int) -> tuple[float, float]:
    """(timestep, sigma) of the step: the scheduler's own sigma list where it keeps one (k-diffusion style
    schedulers), else sigma = sqrt((1 - alpha_bar) / alpha_bar) at the step's timestep (DDIM/PNDM style)."""
    timesteps = getattr(scheduler, "timesteps", None)
    t = float(timesteps[min(step_index, len(timesteps) - 1)]) if timesteps is not None and len(timesteps) else 0.0
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and len(sigmas) > step_index:
        return t, float(sigmas[step_index])
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return t, float("nan")
    a = float(alphas[round(t)])
    return t, math.sqrt((1 - a) / a)


def convergence(records: list[StepRecord]) -> list[float]:
    """Per step: the RMS distance of its x0 prediction to the final one (in latent space)."""
    if not records:
        return []
    final = records[-1].x0
    return [float((r.x0 - final).pow(2).mean().sqrt()) for r in records]
