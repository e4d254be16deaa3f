"""Running one request on the loaded model: diffusers pipelines sharing the model's components, our own noise
(seeds, variation seeds), one step callback (progress, interrupt, skip, prompt schedules), and a VAE decode that
recovers from fp16 NaNs. NaN/Inf that cannot be recovered from (a broken checkpoint, LoRA or VAE) fail the batch
with `NonFiniteOutputError` instead of coming out as black images."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable

import torch
import numpy as np
from PIL import Image

from webui.engine import noise as noise_mod
from webui.engine.acceleration import accelerated_decoder, accelerated_unet
from webui.engine.checkpoints.loader import LoadedModel
from webui.engine.device import DeviceConfig
from webui.engine.errors import EngineError
from webui.engine.jobs import JobState
from webui.engine.prompts.conditioning import build_conditioning
from webui.engine.prompts.encoder import PromptEncoder
from webui.engine.samplers import SamplerChoice, make_scheduler

log = logging.getLogger(__name__)

PIPELINES = {
    ("sd", "txt2img"): "StableDiffusionPipeline",
    ("sd", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",
}


class NonFiniteOutputError(EngineError, RuntimeError):
    """The model produced NaN/Inf values that would be black images (all-NaN or overflowing weights in the
    checkpoint, a LoRA or the VAE; or an fp16 overflow). ``str(err)`` is a message for the user."""


#: An image with a larger share of non-finite values fails the batch (it would be mostly black); a smaller share
#: (a local fp16 overflow) is drawn black there and reported as a warning.
MAX_NONFINITE_SHARE = 0.5


@dataclass
class Batch:
    """One pipeline call: batch_size images sharing the request's settings (prompts as the encoder sees them)."""
    seeds: list[int]
    subseeds: list[int]
    prompts: list[str]
    negative_prompts: list[str]
    init_images: list[Image.Image] | None = None
    mask: Image.Image | None = None
    latent_fill: str | None = None  # inpainting: "latent noise" / "latent nothing" under the mask
    init_latents: torch.Tensor | None = None  # img2img from latents (hires fix's latent upscale)
    control: object | None = None  # ControlNet units of this pass (controlnet.sampling.ControlSet)


def pipeline_for(model: LoadedModel, kind: str, device: DeviceConfig):
    """The model's pipeline of this kind, built once and cached on the model (components are shared)."""
    import diffusers

    pipes = model.pipelines
    if kind in pipes:
        pipe = pipes[kind]
        if pipe.vae is not model.components["vae"]:
            pipe.register_modules(vae=model.components["vae"])
        return pipe
    cls = getattr(diffusers, PIPELINES[("sdxl" if model.family == "sdxl" else "sd", kind)])
    base = pipes.get("txt2img") or pipes.get("img2img")
    if base is not None:
        pipe = cls.from_pipe(base)
    else:
        comps = dict(model.components)
        comps["scheduler"] = make_scheduler_from_config(model)
        if model.family == "sdxl":
            comps.update(image_encoder=None, feature_extractor=None)
        else:
            comps.update(safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        pipe = cls(**comps)
        _configure_memory(pipe, device)
    pipe.set_progress_bar_config(disable=True)
    pipes[kind] = pipe
    return pipe


def make_scheduler_from_config(model: LoadedModel):
    from diffusers import PNDMScheduler

    return PNDMScheduler.from_config(model.scheduler_config)


def _configure_memory(pipe, device: DeviceConfig) -> None:
    if device.attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    if device.attention_slicing:
        pipe.enable_attention_slicing()
    if device.offload == "model":
        pipe.enable_model_cpu_offload(device=device.device)
    elif device.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device.device)


class StepCallback:
    """diffusers `callback_on_step_end`: progress, interrupt/skip, live conditioning changes."""

    def __init__(self, state: JobState, conditioning=None, on_step: Callable | None = None):
        self.state = state
        self.conditioning = conditioning
        self.on_step = on_step
        self.tensor_inputs = ["latents"]
        if conditioning is not None and conditioning.has_schedule:
            self.tensor_inputs += conditioning.callback_tensor_inputs()

    def __call__(self, pipe, step_index: int, timestep, kwargs: dict) -> dict:
        total = getattr(pipe, "num_timesteps", None) or self.state.sampling_steps
        self.state.set_step(step_index + 1, total)
        if self.on_step is not None:
            self.on_step(self.state, step_index, kwargs["latents"])
        if self.state.interrupted or self.state.skipped:
            pipe._interrupt = True  # diffusers' documented way to stop the denoising loop
            return {}
        if self.conditioning is not None and self.conditioning.has_schedule:
            return self.conditioning.step_update(step_index, kwargs, pipe.do_classifier_free_guidance)
        return {}


class LastDenoised:
    """The scheduler's latest estimate of the finished latents (x0), so that an interrupted batch still gives the
    image as far as it got (A1111 decodes its sampler's last `denoised`). diffusers' callback_on_step_end sees only
    the noisy latents; the schedulers return x0 from step() (the multistep ones keep it in `model_outputs`), so this
    batch's own scheduler instance has its step() wrapped: nothing shared is changed."""

    def __init__(self, scheduler):
        self.latents = None
        self.scheduler = scheduler
        step = scheduler.step

        @functools.wraps(step)  # the pipelines read step()'s signature to decide what to pass (generator, eta)
        def recorded(*args, **kwargs):
            out = step(*args, **kwargs)
            self.latents = self._x0(out)
            return out

        scheduler.step = recorded

    def _x0(self, out):
        denoised = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, "pred_original_sample", None)
        if denoised is None:
            denoised = getattr(out, "denoised", None)
        config, outputs = self.scheduler.config, getattr(self.scheduler, "model_outputs", None)
        predicts_x0 = str(config.get("algorithm_type", "")).endswith("++") or config.get("predict_x0", False)
        if denoised is None and outputs and outputs[-1] is not None and predicts_x0:
            denoised = outputs[-1]
        return denoised if denoised is not None else (out[0] if isinstance(out, tuple) else out.prev_sample)


def prompt_encoder(model: LoadedModel) -> PromptEncoder:
    """The model's A1111-style prompt encoder (built once per model)."""
    enc = model.prompt_encoder
    if enc is None:
        names = ("tokenizer", "tokenizer_2") if model.family == "sdxl" else ("tokenizer",)
        tes = ("text_encoder", "text_encoder_2") if model.family == "sdxl" else ("text_encoder",)
        enc = PromptEncoder([model.components[n] for n in names], [model.components[n] for n in tes], model.family)
        model.prompt_encoder = enc
    return enc


@dataclass
class SamplingSpec:
    """What every pipeline call of one job shares (set once per job by the prepare stage)."""
    choice: SamplerChoice
    steps: int
    cfg_scale: float
    width: int
    height: int
    subseed_strength: float = 0.0
    denoising_strength: float = 0.75
    clip_skip: int = 1
    eta: float | None = None


def pipeline_kind(model: LoadedModel, batch: Batch) -> str:
    if batch.init_latents is not None:
        return "img2img"
    if batch.init_images:
        return "inpaint" if (batch.mask is not None or model.spec.inpaint) else "img2img"
    return "inpaint" if model.spec.inpaint else "txt2img"  # an inpainting model starts from a blank image


def sample_batch(model: LoadedModel, device: DeviceConfig, spec: SamplingSpec, batch: Batch, state: JobState,
                 on_step: Callable | None = None, inspector=None) -> torch.Tensor | None:
    """The sampled latents of one batch; when interrupted, the latents as far as they got (the last estimate of
    the finished image; `state.interrupted` tells); None when skipped or interrupted before the first step.
    `inspector` (webui/engine/inspect/sampling.py, only for an Inspect run): its hooks around the pipeline call."""
    kind = pipeline_kind(model, batch)
    pipe = batch.control.pipeline(model, kind, device) if batch.control is not None else pipeline_for(model, kind, device)
    pipe.scheduler = make_scheduler(spec.choice, model.scheduler_config, model.family)
    denoised = LastDenoised(pipe.scheduler)
    # A1111 builds prompt schedules over the sampler's UNet calls (twice the steps for second-order samplers)
    conditioning = build_conditioning(prompt_encoder(model), batch.prompts, batch.negative_prompts,
                                      spec.steps * max(1, int(getattr(pipe.scheduler, "order", 1))), spec.clip_skip)
    callback = StepCallback(state, conditioning, on_step)
    args = dict(num_inference_steps=spec.steps, guidance_scale=spec.cfg_scale, output_type="latent",
                generator=noise_mod.generators(batch.seeds), callback_on_step_end=callback,
                callback_on_step_end_tensor_inputs=callback.tensor_inputs)
    if spec.eta is not None and "eta" in _call_params(pipe):
        args["eta"] = spec.eta
    args.update(conditioning.pipeline_kwargs())
    args.update(_image_args(model, device, pipe, kind, spec, batch))
    if batch.control is not None:
        batch.control.finish_args(pipe, kind, spec, args)
    state.set_step(0, spec.steps if kind == "txt2img" else max(1, int(spec.steps * args["strength"])))
    pipe._interrupt = False
    if inspector is None:  # an Inspect run needs the PyTorch UNet (its hooks are attention processors)
        with accelerated_unet(model, device.accelerator, pipe):  # --compile / --backend openvino, else as it is
            out = pipe(**args)
    else:
        with inspector.sampling(pipe, args, callback, denoised, model=model, spec=spec, batch=batch):
            out = pipe(**args)
    if state.skipped:
        return None
    return denoised.latents if state.interrupted else out.images


def _image_args(model: LoadedModel, device: DeviceConfig, pipe, kind: str, spec: SamplingSpec,
                batch: Batch) -> dict:
    """The pipeline arguments that say where sampling starts: our noise, or the init images (and mask)."""
    width, height = spec.width, spec.height
    if kind == "txt2img":
        shape = (model.components["vae"].config.latent_channels, height // 8, width // 8)
        latents = noise_mod.image_noise(batch.seeds, batch.subseeds, spec.subseed_strength, shape)
        exec_device = getattr(pipe, "_execution_device", device.device)
        return dict(latents=latents.to(exec_device, device.dtype), width=width, height=height)
    images = batch.init_images or [Image.new("RGB", (width, height), (127, 127, 127))] * len(batch.seeds)
    if batch.init_latents is not None:
        images = batch.init_latents.to(getattr(pipe, "_execution_device", device.device), device.dtype)
    given = batch.init_images or batch.init_latents is not None
    # at least one step: diffusers returns nothing when steps * strength rounds down to 0
    strength = min(max(spec.denoising_strength, 1.0 / spec.steps), 1.0) if given else 1.0
    args = dict(image=images, strength=strength)
    if kind == "inpaint":
        mask = batch.mask if batch.mask is not None else Image.new("L", (width, height), 255)
        args.update(mask_image=mask, width=width, height=height)
        if batch.latent_fill and batch.init_images:
            latents = filled_latents(model, pipe, images, mask, batch)
            keep = 1.0 - _latent_mask(mask, latents)
            args.update(image=latents, masked_image_latents=latents * keep)
    return args


@torch.no_grad()
def filled_latents(model: LoadedModel, pipe, images: list[Image.Image], mask: Image.Image,
                   batch: Batch) -> torch.Tensor:
    """A1111's "latent noise" / "latent nothing" masked content: the init images encoded by the VAE, and under the
    mask, seeded noise or zeros instead. Given to the pipeline as its (already encoded) image."""
    vae = model.components["vae"]
    param = next(vae.parameters())
    pixels = pipe.image_processor.preprocess(images).to(param.device, vae.dtype)
    encoded = [vae.encode(pixels[i:i + 1]).latent_dist.sample(g)
               for i, g in enumerate(noise_mod.generators(batch.seeds))]
    latents = torch.cat(encoded) * vae.config.scaling_factor
    if batch.latent_fill == "latent noise":
        fill = torch.stack([noise_mod.seed_noise(s + 1, tuple(latents.shape[1:])) for s in batch.seeds])
    else:
        fill = torch.zeros_like(latents)
    where = _latent_mask(mask, latents)
    return latents * (1 - where) + fill.to(latents) * where


def _latent_mask(mask: Image.Image, latents: torch.Tensor) -> torch.Tensor:
    """The mask at latent size (1 = repaint), shaped to broadcast over `latents`."""
    small = mask.convert("L").resize((latents.shape[-1], latents.shape[-2]), Image.BILINEAR)
    return (torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0) > 0.5).to(latents)[None, None]


def _call_params(pipe) -> set[str]:
    import inspect

    return set(inspect.signature(type(pipe).__call__).parameters)


def check_latents(latents: torch.Tensor, in_use: str, dtype: torch.dtype) -> None:
    """Sampled latents with any NaN/Inf: the VAE's convolutions and group norms spread it over the whole image, so
    no pixel would survive - fail now, naming what was in use."""
    bad = int((~torch.isfinite(latents.flatten(1))).any(dim=1).sum())
    if bad:
        hint = "try --no-half (fp32), " if dtype in (torch.float16, torch.bfloat16) else ""
        raise NonFiniteOutputError(
            f"The model produced NaN/Inf values while sampling ({_which(bad, len(latents))}), which would be black "
            f"images; in use: {in_use}. A checkpoint or LoRA with broken (NaN) or overflowing weights causes this: "
            f"{hint}use another checkpoint, or remove or lower the LoRAs.")


def _which(bad: int, total: int) -> str:
    return "every image" if bad == total else f"{bad} of {total} images"


def screen_image(img: torch.Tensor, in_use: str, warnings: list[str] | None) -> torch.Tensor:
    """A decoded image (-1..1) with no NaN/Inf left: mostly non-finite fails, a few values are drawn black and
    reported (to_pil would silently turn them into 0 anyway)."""
    finite = torch.isfinite(img)
    if bool(finite.all()):
        return img
    share = 1.0 - float(finite.float().mean())
    if share > MAX_NONFINITE_SHARE:
        raise NonFiniteOutputError(
            f"The VAE produced NaN/Inf values for {share:.0%} of an image, which would be a black image; in use: "
            f"{in_use}. A VAE with broken (NaN) or overflowing weights causes this: choose another VAE "
            f"(\"None\" uses the checkpoint's own).")
    msg = f"The VAE produced NaN/Inf values for {share:.1%} of an image; those pixels are black"
    if warnings is not None and msg not in warnings:
        warnings.append(msg)
    return torch.nan_to_num(img, nan=-1.0, posinf=1.0, neginf=-1.0)


@torch.no_grad()
def decode_latents(model: LoadedModel, latents: torch.Tensor, device: DeviceConfig, *, in_use: str = "",
                   warnings: list[str] | None = None) -> list[Image.Image]:
    """Decode one image at a time (VAE slicing); tiled for big images; an fp16 VAE that produces NaNs is upcast
    to fp32 and the decode retried (A1111's automatic --no-half-vae). NaN/Inf left after that: `screen_image`."""
    vae = model.components["vae"]
    side = max(latents.shape[-2:]) * 8
    if side > device.vae_tiling_side:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
    fast = accelerated_decoder(model, device.accelerator, vae, tiled=side > device.vae_tiling_side)
    out = []
    for lat in latents:
        img = fast(lat[None]) if fast is not None else None
        if img is None or not bool(torch.isfinite(img).all()):  # the accelerated decode's NaNs: the checks below
            img = _decode_one(vae, lat[None], fp32=vae in model.fp32_vaes)
        if not bool(torch.isfinite(img).all()) and vae.dtype == torch.float16 and vae not in model.fp32_vaes:
            log.warning("VAE produced NaNs in fp16; decoding with this VAE in fp32 from now on")
            model.fp32_vaes.add(vae)
            img = _decode_one(vae, lat[None], fp32=True)
        out.append(to_pil(screen_image(img, in_use or model.title, warnings))[0])
    return out


def _decode_one(vae, lat: torch.Tensor, fp32: bool = False) -> torch.Tensor:
    """One decode; `fp32`: an fp16 VAE upcast for this decode only, so its dtype stays what the pipelines (which
    encode init images with it) expect."""
    if fp32 and vae.dtype == torch.float16:
        vae.to(torch.float32)
        try:
            return _decode_one(vae, lat)
        finally:
            vae.to(torch.float16)
    param = next(vae.parameters())
    lat = lat.to(param.device if param.device.type != "meta" else lat.device, vae.dtype)
    scale = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return vae.decode(lat / scale + shift, return_dict=False)[0]


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    arr = ((images.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]
