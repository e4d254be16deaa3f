"""diffusers schedulers that step over a sigma list we give them (an A1111 schedule, see schedules.py), and the
ancestral Euler step (Euler a, LCM, DDIM on a schedule) written for them."""
from __future__ import annotations

import functools
import math

import torch
from diffusers import EulerDiscreteScheduler
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor


class SigmaListMixin:
    """Steps over ``self.sigma_list(n)`` (n steps -> n + 1 levels) instead of the scheduler's own sigmas.

    diffusers' sigma-based schedulers build Karras sigmas in ``_convert_to_karras`` and derive everything else from
    its result: the timesteps the UNet sees, the sampler's own layout (Heun's and DPM2's doubled steps), the final
    level. Made with ``use_karras_sigmas=True``, a subclass that overrides that one method steps over any list."""

    sigma_list = None  # set by samplers.make_scheduler

    def _convert_to_karras(self, in_sigmas, num_inference_steps=None):
        if self.sigma_list is None:  # a set_timesteps run by __init__, before make_scheduler gives the list
            return in_sigmas
        return self.sigma_list(num_inference_steps or self.num_inference_steps)[:-1]  # the scheduler adds the last


@functools.cache
def on_sigma_list(cls: type) -> type:
    """``cls`` stepping over a given sigma list (one subclass per diffusers class, same name)."""
    return type(cls.__name__, (SigmaListMixin, cls), {})


def ancestral_levels(sigma: float, sigma_to: float, eta: float) -> tuple[float, float]:
    """k-diffusion's ``get_ancestral_step``: the level to step down to deterministically, then the noise to add."""
    if not eta or sigma_to == 0:
        return sigma_to, 0.0
    if math.isinf(eta):  # LCM: all the way to the denoised image, then noise up to the next level
        return 0.0, sigma_to
    up = min(sigma_to, eta * (sigma_to**2 * (sigma**2 - sigma_to**2) / sigma**2) ** 0.5)
    return (sigma_to**2 - up**2) ** 0.5, up


class AncestralEuler(SigmaListMixin, EulerDiscreteScheduler):
    """k-diffusion's ancestral Euler step (``sample_euler_ancestral``; with eta = inf ``sample_lcm``) on Euler's
    schedules. Written here because diffusers' EulerAncestralDiscreteScheduler takes no schedule (no Karras option,
    no sigma list) and no eta, and its LCMScheduler only takes whole timesteps."""

    eta = 1.0

    def step(self, model_output, timestep, sample, generator=None, return_dict=True, **_):
        return self.ancestral_step(model_output, timestep, sample, self.eta, generator, return_dict)

    def ancestral_step(self, model_output, timestep, sample, eta, generator, return_dict):
        if self.step_index is None:
            self._init_step_index(timestep)
        sigma, sigma_to = float(self.sigmas[self.step_index]), float(self.sigmas[self.step_index + 1])
        x = sample.to(torch.float32)
        denoised = self._denoised(model_output.to(torch.float32), x, sigma)
        down, up = ancestral_levels(sigma, sigma_to, eta)
        x = denoised + (x - denoised) * (down / sigma)
        if up > 0:
            noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                 dtype=model_output.dtype)
            x = x + noise.to(torch.float32) * up
        self._step_index += 1
        x = x.to(model_output.dtype)
        return EulerDiscreteSchedulerOutput(x, denoised) if return_dict else (x, denoised)

    def _denoised(self, model_output, x, sigma: float):
        kind = self.config.prediction_type
        if kind == "epsilon":
            return x - sigma * model_output
        if kind == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
        return model_output  # "sample"


class LCMOnSigmas(AncestralEuler):
    eta = math.inf


class DDIMOnSigmas(AncestralEuler):
    """DDIM on any schedule. In sigma space DDIM with eta is exactly the ancestral Euler step with that eta
    (k-diffusion's ancestral noise level is DDIM's sigma_t / sqrt(alpha_prev)), so this is DDIM itself. Takes
    ``eta`` from the pipeline (A1111's DDIM default, 0, when the request gives none)."""

    def step(self, model_output, timestep, sample, eta: float = 0.0, generator=None, return_dict=True, **_):
        return self.ancestral_step(model_output, timestep, sample, eta, generator, return_dict)


OURS = {cls.__name__: cls for cls in (AncestralEuler, LCMOnSigmas, DDIMOnSigmas)}
