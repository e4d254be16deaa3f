"""Samplers and schedule types as in A1111 1.10: every sampler takes every schedule type and its scheduler steps over
that schedule's noise levels (checked against the formulas, computed here from the model's betas), old names still
resolve, the infotext keeps A1111's labels, and the samplers we lack are refused by name."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from webui import resources
from webui.engine import samplers, schedules
from webui.engine.infotext import parse_infotext
from webui.engine.requests import GenerationRequest
from webui.engine.samplers import SamplerError, make_scheduler, resolve

SD1 = json.loads((resources.config_dir("sd1") / "scheduler" / "scheduler_config.json").read_text())
SDXL = json.loads((resources.config_dir("sdxl") / "scheduler" / "scheduler_config.json").read_text())


def training_sigmas() -> np.ndarray:
    """SD's noise level at each of its 1000 timesteps ("scaled_linear" betas), low to high."""
    betas = np.linspace(SD1["beta_start"] ** 0.5, SD1["beta_end"] ** 0.5, 1000) ** 2
    alphas = np.cumprod(1 - betas)
    return np.sqrt((1 - alphas) / alphas)


SIGMAS = training_sigmas()
SMIN, SMAX = SIGMAS[0], SIGMAS[-1]


def sigma_at(t) -> np.ndarray:
    """k-diffusion's t -> sigma: linear in log sigma between whole timesteps."""
    return np.exp(np.interp(t, np.arange(1000), np.log(SIGMAS)))


def karras(n: int, rho: float = 7.0) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    return (SMAX ** (1 / rho) + ramp * (SMIN ** (1 / rho) - SMAX ** (1 / rho))) ** rho


def stepped(sampler: str, schedule: str, steps: int, config: dict = SD1, **kw):
    scheduler = make_scheduler(resolve(sampler, schedule), config, **kw)
    scheduler.set_timesteps(steps)
    return scheduler


def levels(scheduler) -> np.ndarray:
    """The noise levels stepped through, each once (Heun and DPM2 list a level twice: two UNet calls)."""
    s = scheduler.sigmas.double().numpy()
    return s[np.r_[True, np.abs(np.diff(s)) > 1e-6]]


# ---- the noise levels each schedule gives --------------------------------------------------------------------

def test_euler_a_with_karras_steps_over_the_karras_formula():
    sch = stepped("Euler a", "Karras", 6)
    assert np.allclose(sch.sigmas[:-1].numpy(), karras(6), rtol=1e-4) and sch.sigmas[-1] == 0
    assert np.allclose(sigma_at(sch.timesteps.numpy()), karras(6), rtol=1e-4)  # the UNet sees the matching t
    assert float(sch.init_noise_sigma) == pytest.approx(SMAX, rel=1e-4)  # starts from noise * sigma_max


def test_euler_with_exponential_is_log_linear_from_sigma_max_to_sigma_min():
    s = stepped("Euler", "Exponential", 7).sigmas.double().numpy()
    assert s[-1] == 0 and s[0] == pytest.approx(SMAX, rel=1e-4) and s[-2] == pytest.approx(SMIN, rel=1e-4)
    steps = np.diff(np.log(s[:-1]))
    assert np.allclose(steps, steps[0], rtol=1e-4) and steps[0] < 0


def test_dpmpp_2m_with_uniform_takes_evenly_spaced_timesteps():
    sch = stepped("DPM++ 2M", "Uniform", 5)
    t = np.linspace(999, 0, 5)
    assert np.allclose(sch.sigmas[:-1].numpy(), sigma_at(t), rtol=1e-4) and sch.sigmas[-1] == 0
    assert np.abs(sch.timesteps.numpy() - t).max() <= 0.5 + 1e-3  # DPM-Solver rounds the UNet's timesteps


def test_ddim_keeps_a1111_timesteps_under_automatic_and_takes_karras_when_asked():
    own = stepped("DDIM", "Automatic", 5)
    assert type(own).__name__ == "DDIMScheduler" and own.timesteps.tolist() == [801, 601, 401, 201, 1]
    sch = stepped("DDIM", "Karras", 6)
    assert np.allclose(sch.sigmas[:-1].numpy(), karras(6), rtol=1e-4) and sch.sigmas[-1] == 0


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_on_a_sigma_list_is_the_ddim_update(eta):
    """One step of DDIM over the DDIM schedule's levels = diffusers' DDIMScheduler's step (same eta, same noise),
    once the latents are taken between DDIM's scaling (x) and the sigma samplers' (x / sqrt(alpha))."""
    ddim, ours = stepped("DDIM", "Automatic", 5), stepped("DDIM", "DDIM", 5)
    assert ours.timesteps.round().tolist() == ddim.timesteps.tolist()
    x, eps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.randn(1, 4, 8, 8)
    t, t_next = int(ddim.timesteps[1]), int(ddim.timesteps[2])
    alpha, alpha_next = (float(ddim.alphas_cumprod[i]) for i in (t, t_next))
    want = ddim.step(eps, t, x, eta=eta, generator=torch.Generator().manual_seed(2)).prev_sample
    ours.set_begin_index(1)
    got = ours.step(eps, ours.timesteps[1], x / alpha ** 0.5, eta=eta,
                    generator=torch.Generator().manual_seed(2)).prev_sample * alpha_next ** 0.5
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ancestral_step_without_noise_is_eulers_step_and_lcm_lands_on_x0_plus_noise(prediction):
    config = {**SD1, "prediction_type": prediction}
    ours, euler = stepped("DDIM", "Karras", 4, config), stepped("Euler", "Karras", 4, config)
    x, out = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)), torch.randn(1, 4, 8, 8)
    want = euler.step(out, euler.timesteps[0], x)
    got = ours.step(out, ours.timesteps[0], x, eta=0.0)
    assert torch.allclose(got.prev_sample, want.prev_sample, atol=1e-5)
    assert torch.allclose(got.pred_original_sample, want.pred_original_sample, atol=1e-5)
    lcm = stepped("LCM", "Karras", 4, config)
    step = lcm.step(out, lcm.timesteps[0], x, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    sigma_next = float(lcm.sigmas[1])
    assert torch.allclose(step.prev_sample, want.pred_original_sample + noise * sigma_next, atol=1e-4)


def test_align_your_steps_uses_the_published_lists_and_interpolates_in_log_sigma():
    assert np.allclose(stepped("Euler", "Align Your Steps", 11).sigmas[:-1].numpy(), schedules.AYS_SD1)
    sdxl = stepped("Euler", "Align Your Steps", 11, family="sdxl").sigmas[:-1].numpy()
    assert np.allclose(sdxl, schedules.AYS_SDXL)
    assert np.allclose(stepped("Euler a", "Align Your Steps", 11, SDXL).sigmas[:-1].numpy(), schedules.AYS_SDXL)
    three = stepped("DPM++ 2M", "Align Your Steps", 3).sigmas.numpy()
    assert np.allclose(three, [14.615, 1.396, 0.029, 0.0], rtol=1e-4)  # the middle one is the list's middle
    five = stepped("Euler", "Align Your Steps", 5).sigmas[:-1].double().numpy()
    # 5 levels sit at 0, 2.5, 5, 7.5, 10 along the 11: the second halfway (in log sigma) between the 3rd and 4th
    assert five[1] == pytest.approx(np.sqrt(3.861 * 2.697), rel=1e-4)


def test_kl_optimal_and_polyexponential_follow_their_formulas():
    kl = stepped("Euler", "KL Optimal", 6).sigmas[:-1].double().numpy()
    w = np.arange(6) / 6
    assert np.allclose(kl, np.tan(w * np.arctan(SMIN) + (1 - w) * np.arctan(SMAX)), rtol=1e-4)
    poly = stepped("LMS", "Polyexponential", 6).sigmas[:-1].double().numpy()  # rho 1: log-linear, as A1111
    assert np.allclose(poly, np.exp(np.linspace(np.log(SMAX), np.log(SMIN), 6)), rtol=1e-4)


def test_simple_sgm_uniform_and_beta_schedules():
    simple = stepped("Euler", "Simple", 4).sigmas[:-1].double().numpy()
    assert np.allclose(simple, SIGMAS[[999, 749, 499, 249]], rtol=1e-4)  # whole training levels, 1000/n apart
    sgm = stepped("Euler", "SGM Uniform", 4).sigmas[:-1].double().numpy()
    assert np.allclose(sgm, sigma_at(np.linspace(999, 0, 5)[:-1]), rtol=1e-4)
    beta = stepped("Heun", "Beta", 5)
    from scipy import stats

    ppf = stats.beta.ppf(1 - np.linspace(0, 1, 5), 0.6, 0.6)
    assert np.allclose(levels(beta)[:-1], SMIN + ppf * (SMAX - SMIN), rtol=1e-4)


def test_heun_and_dpm2_layouts_keep_the_schedule():
    heun = stepped("Heun", "Karras", 5)
    assert len(heun.sigmas) == 2 * 5 and np.allclose(levels(heun)[:-1], karras(5), rtol=1e-4)
    # A1111's DPM2 makes the list for one step more and drops its next-to-last level
    dpm2 = stepped("DPM2", "Karras", 5)
    assert np.allclose(levels(dpm2)[:-1], np.delete(karras(6), -1), rtol=1e-4)


def test_plms_keeps_its_evenly_spaced_timesteps_for_any_schedule_type_as_a1111():
    auto, karras_ = stepped("PLMS", "Automatic", 5), stepped("PLMS", "Karras", 5)
    assert type(karras_).__name__ == "PNDMScheduler"
    assert karras_.timesteps.tolist() == auto.timesteps.tolist() == [801, 601, 601, 401, 201, 1]
    assert resolve("PLMS", "Karras").schedule == "Karras"  # recorded as A1111 records it


def test_every_sampler_takes_every_schedule_type():
    for name in samplers.sampler_names():
        for label in samplers.schedule_names():
            choice = resolve(name, label)
            sch = make_scheduler(choice, SD1)
            sch.set_timesteps(4)
            assert torch.isfinite(sch.timesteps.double()).all(), (name, label)
            if choice.sigma_schedule:
                want = schedules.sigmas(choice.sigma_schedule, 4, schedules.NoiseLevels(sch.alphas_cumprod),
                                        discard_penultimate=choice.sampler.discard_penultimate)
                assert np.allclose(levels(sch)[:-1], want[:-1], rtol=1e-4), (name, label)


# ---- names -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, schedule, sampler, shown", [
    ("Euler a", "Karras", "Euler a", "Karras"),
    ("Euler a Karras", None, "Euler a", "Karras"),
    ("k_euler_a", "karras", "Euler a", "Karras"),
    ("DPM++ 2M Karras", "Automatic", "DPM++ 2M", "Karras"),
    ("DPM++ 2M SDE Heun Exponential", None, "DPM++ 2M SDE Heun", "Exponential"),
    ("Euler SGMUniform", None, "Euler", "SGM Uniform"),
    ("k_dpmpp_2m", "align_your_steps", "DPM++ 2M", "Align Your Steps"),
    ("Euler a DDIM", None, "Euler a", "DDIM"),
    ("DDIM", None, "DDIM", "Automatic"),
    # "Automatic" is written as A1111 writes it: the sampler's default schedule where it has one
    ("DPM++ 2M", "Automatic", "DPM++ 2M", "Karras"),
    ("DPM++ 3M SDE", None, "DPM++ 3M SDE", "Exponential"),
    ("Euler a", "Automatic", "Euler a", "Automatic"),
])
def test_names_resolve_as_a1111(name, schedule, sampler, shown):
    choice = resolve(name, schedule)
    assert (choice.sampler.name, choice.schedule) == (sampler, shown)


def test_automatic_without_a_default_steps_over_uniform():
    assert resolve("Euler a").sigma_schedule == "Uniform" and resolve("DDIM").sigma_schedule is None
    assert resolve("DPM++ 2M SDE").sigma_schedule == "Exponential"


@pytest.mark.parametrize("name, canonical", [("Restart", "Restart"), ("restart", "Restart"),
                                             ("DPM fast", "DPM fast"), ("k_dpm_ad", "DPM adaptive"),
                                             ("DDIM CFG++", "DDIM CFG++"), ("Restart Karras", "Restart")])
def test_samplers_we_lack_are_refused_by_name(name, canonical):
    with pytest.raises(SamplerError) as err:
        resolve(name)
    text = str(err.value)
    assert f"'{canonical}' is not available in Latent Studio" in text and "Euler a, Euler, LMS" in text
    assert canonical not in samplers.sampler_names()


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(SamplerError, match="Valid samplers: DPM\\+\\+ 2M, DPM\\+\\+ SDE"):
        resolve("Warp Drive")
    with pytest.raises(SamplerError, match="Valid schedule types: Automatic, Uniform, Karras, Exponential, "
                                           "Polyexponential, SGM Uniform, KL Optimal, Align Your Steps"):
        resolve("Euler", "Sideways")


# ---- generation --------------------------------------------------------------------------------------------------

def kl_optimal(n: int) -> np.ndarray:
    w = np.arange(n) / n
    return np.tan(w * np.arctan(SMIN) + (1 - w) * np.arctan(SMAX))


GENERATED = [  # sampler, schedule type, the 3 levels it must step over
    ("Euler a", "Karras", karras(3)),
    ("Euler", "Exponential", np.exp(np.linspace(np.log(SMAX), np.log(SMIN), 3))),
    ("DPM++ 2M", "Uniform", sigma_at(np.linspace(999, 0, 3))),
    ("DDIM", "Karras", karras(3)),
    ("Euler", "Align Your Steps", np.array([14.615, 1.396, 0.029])),
    ("LCM", "KL Optimal", kl_optimal(3)),
]


@pytest.fixture
def used_schedulers(monkeypatch):
    """The schedulers the pipelines step with, as they were at the end of sampling."""
    from webui.engine import generation

    made = []

    def recording(*args, **kw):
        made.append(make_scheduler(*args, **kw))
        return made[-1]

    monkeypatch.setattr(generation, "make_scheduler", recording)
    return made


@pytest.mark.parametrize("sampler, schedule, want", GENERATED, ids=[f"{a}+{b}" for a, b, _ in GENERATED])
def test_generation_steps_over_the_schedule(engine, used_schedulers, sampler, schedule, want):
    r = engine.generate(GenerationRequest(prompt="a red circle", steps=3, width=64, height=64, seed=3,
                                          sampler_name=sampler, scheduler=schedule))
    assert len(used_schedulers) == 1
    assert np.allclose(levels(used_schedulers[0])[:-1], want, rtol=1e-4)
    assert np.asarray(r.images[0], dtype=np.float32).std() > 1.0  # a picture, not a flat fill
    info = parse_infotext(r.infotexts[0])
    assert (info["Sampler"], info["Schedule type"]) == (sampler, schedule)


def image(engine, sampler: str, schedule: str, seed: int = 5) -> np.ndarray:
    r = engine.generate(GenerationRequest(prompt="a red circle", steps=4, width=64, height=64, seed=seed,
                                          sampler_name=sampler, scheduler=schedule))
    return np.asarray(r.images[0], dtype=np.float32)


def test_the_schedule_changes_the_picture(engine):
    karras_a, karras_b, ddim = (image(engine, "Euler", s) for s in ("Karras", "Karras", "DDIM"))
    assert np.array_equal(karras_a, karras_b)
    assert np.abs(karras_a - ddim).mean() > 0.5  # DDIM's 4 levels start at t = 751, not 999


def test_ancestral_noise_comes_from_the_seed(engine):
    assert np.array_equal(image(engine, "Euler a", "Karras"), image(engine, "Euler a", "Karras"))
