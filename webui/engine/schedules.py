"""A1111 1.10's schedule types as sigma lists, over a model's training noise levels.

The formulas are k-diffusion's and A1111's ``sd_schedulers.py``. Written here rather than taken from diffusers'
``use_karras_sigmas`` & co. because diffusers has only three of the twelve, computes those over a range that differs
between scheduler classes (Euler's depends on its timestep spacing), and gives Euler a none at all; with one list
per schedule every sampler steps over the same sigmas A1111's would.
"""
from __future__ import annotations

import math

import numpy as np

# Align Your Steps: NVIDIA's published 10-step noise levels (research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto)
AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
BETA_ALPHA = BETA_BETA = 0.6  # A1111's defaults for the Beta schedule (options beta_dist_alpha / beta_dist_beta)


class NoiseLevels:
    """A model's training sigmas, one per timestep, with k-diffusion's t <-> sigma interpolation (linear in log
    sigma)."""

    def __init__(self, alphas_cumprod):
        ac = np.asarray(alphas_cumprod, dtype=np.float64)
        self.log_sigmas = np.log(np.sqrt((1 - ac) / ac))  # increasing with t
        self.t_max = len(ac) - 1
        self.sigma_min = float(np.exp(self.log_sigmas[0]))
        self.sigma_max = float(np.exp(self.log_sigmas[-1]))

    def t_to_sigma(self, t) -> np.ndarray:
        return np.exp(np.interp(t, np.arange(self.t_max + 1), self.log_sigmas))

    def sigma_to_t(self, sigma) -> np.ndarray:
        return np.interp(np.log(sigma), self.log_sigmas, np.arange(self.t_max + 1))


def _then_zero(sigmas) -> np.ndarray:
    return np.append(np.asarray(sigmas, dtype=np.float64), 0.0)


def uniform(n: int, lv: NoiseLevels) -> np.ndarray:
    """Evenly spaced timesteps from the last to the first (k-diffusion's ``get_sigmas``). A1111's Normal is the
    same list: it spans sigma_to_t(sigma_max)..sigma_to_t(sigma_min), which is t_max..0."""
    return _then_zero(lv.t_to_sigma(np.linspace(lv.t_max, 0, n)))


def sgm_uniform(n: int, lv: NoiseLevels) -> np.ndarray:
    return _then_zero(lv.t_to_sigma(np.linspace(lv.t_max, 0, n + 1)[:-1]))


def karras(n: int, lv: NoiseLevels, rho: float = 7.0) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    lo, hi = lv.sigma_min ** (1 / rho), lv.sigma_max ** (1 / rho)
    return _then_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n: int, lv: NoiseLevels) -> np.ndarray:
    return _then_zero(np.exp(np.linspace(math.log(lv.sigma_max), math.log(lv.sigma_min), n)))


def polyexponential(n: int, lv: NoiseLevels, rho: float = 1.0) -> np.ndarray:
    ramp = np.linspace(1, 0, n) ** rho
    lo, hi = math.log(lv.sigma_min), math.log(lv.sigma_max)
    return _then_zero(np.exp(ramp * (hi - lo) + lo))


def kl_optimal(n: int, lv: NoiseLevels) -> np.ndarray:
    """n + 1 levels ending at sigma_min, not 0 (as A1111's)."""
    w = np.arange(n + 1) / n
    return np.tan(w * math.atan(lv.sigma_min) + (1 - w) * math.atan(lv.sigma_max))


def align_your_steps(n: int, sdxl: bool) -> np.ndarray:
    """The published list, log-linearly interpolated to n levels (A1111's ``loglinear_interp``)."""
    published = np.log(np.array(AYS_SDXL if sdxl else AYS_SD1)[::-1])
    levels = np.exp(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(published)), published))
    return _then_zero(levels[::-1])


def simple(n: int, lv: NoiseLevels) -> np.ndarray:
    step = (lv.t_max + 1) / n
    return _then_zero([math.exp(lv.log_sigmas[lv.t_max - int(i * step)]) for i in range(n)])


def ddim(n: int, lv: NoiseLevels) -> np.ndarray:
    """The DDIM sampler's timesteps 1, 1 + k, 1 + 2k... (k = 1000 // n). A1111's list keeps going up to 999 and so
    has a level more than asked for some n (7 steps -> 8); this one has exactly n."""
    step = max((lv.t_max + 1) // n, 1)
    return _then_zero(np.exp(lv.log_sigmas[1 + step * np.arange(n)[::-1]]))


def beta(n: int, lv: NoiseLevels) -> np.ndarray:
    from scipy import stats  # a dependency of torchsde

    ppf = stats.beta.ppf(1 - np.linspace(0, 1, n), BETA_ALPHA, BETA_BETA)
    return _then_zero(lv.sigma_min + ppf * (lv.sigma_max - lv.sigma_min))


BY_LABEL = {
    "Uniform": uniform, "Karras": karras, "Exponential": exponential, "Polyexponential": polyexponential,
    "SGM Uniform": sgm_uniform, "KL Optimal": kl_optimal, "Simple": simple, "Normal": uniform, "DDIM": ddim,
    "Beta": beta,
}


def sigmas(schedule: str, n: int, lv: NoiseLevels, *, sdxl: bool = False,
           discard_penultimate: bool = False) -> np.ndarray:
    """The n + 1 noise levels of an n-step schedule (the last is 0, KL Optimal's sigma_min). With
    ``discard_penultimate`` (A1111's DPM2, DPM2 a, DPM++ 3M SDE) the list is made for n + 1 steps and its
    next-to-last level dropped."""
    if discard_penultimate:
        longer = sigmas(schedule, n + 1, lv, sdxl=sdxl)
        return np.append(longer[:-2], longer[-1])
    if schedule == "Align Your Steps":
        return align_your_steps(n, sdxl)
    return BY_LABEL[schedule](n, lv)
