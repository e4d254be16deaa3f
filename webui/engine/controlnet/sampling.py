"""Sampling with ControlNet units: diffusers' ControlNet pipelines, built from the loaded model's components.

A job's units become one ``ControlSet`` (prepared once per job, in the worker): the ControlNet models (from the
cache), the detected maps, and the control images at the size of each pass. ``sample_batch`` asks it for the
pipeline and the extra arguments:

* txt2img / img2img / inpaint: ``StableDiffusion[XL]ControlNet[Img2Img|Inpaint]Pipeline.from_pipe`` of the model's
  plain pipeline (the same UNet, VAE, text encoders: LoRAs and embeddings apply), kept on the model.
* weight -> ``controlnet_conditioning_scale``; guidance start/end -> ``control_guidance_start/end`` (diffusers
  skips the steps outside; ``UnitNet`` then does not run the model at all).
* control mode, as the extension: "ControlNet is more important" is the original ControlNet's guess mode (control
  on the conditional half of classifier-free guidance only, the residuals weighted from 0.1 at the first to 1 at
  the middle block): diffusers' ``guess_mode`` when every unit asks for it; "My prompt is more important" is that
  soft weighting alone. With units in different modes, each ``UnitNet`` applies its own.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from webui.engine.resize import resize_image

PIPELINES = {
    ("sd", "txt2img"): "StableDiffusionControlNetPipeline",
    ("sd", "img2img"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLControlNetInpaintPipeline",
}
SOFT_DECAY = 0.825  # the original ControlNet's guess-mode weights: 0.825 ** (12 - i) over SD1's 13 residuals


class UnitNet(torch.nn.Module):
    """One unit's ControlNetModel as diffusers' MultiControlNetModel calls it, with the unit's control mode.
    Counts the steps it ran with control (``steps_applied``); a step with scale 0 (outside guidance start/end)
    adds zeros without running the model (except the job's first such step, which learns the residuals' shapes)."""

    def __init__(self, net, soft: bool = False, cond_only: bool = False):
        super().__init__()
        self.net = net
        self.soft, self.cond_only = soft, cond_only
        self.cfg = False  # set per call: the batch is [uncond, cond] (classifier-free guidance on)
        self.steps_applied = 0
        self._zeros = None

    @property
    def config(self):
        return self.net.config

    @property
    def dtype(self):
        return self.net.dtype

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale=1.0,
                guess_mode=False, return_dict=False, **kwargs):
        if float(conditioning_scale) == 0.0 and self._zeros is not None and self._zeros[0] == sample.shape:
            _, down_shapes, mid_shape = self._zeros
            return ([sample.new_zeros(s) for s in down_shapes], sample.new_zeros(mid_shape))
        down, mid = self.net(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                             controlnet_cond=controlnet_cond, conditioning_scale=conditioning_scale,
                             guess_mode=guess_mode, return_dict=False, **kwargs)
        self._zeros = (sample.shape, [d.shape for d in down], mid.shape)
        if float(conditioning_scale) == 0.0:
            return [torch.zeros_like(d) for d in down], torch.zeros_like(mid)
        self.steps_applied += 1
        if self.soft and not guess_mode:
            n = len(down)
            down = [d * SOFT_DECAY ** float(n - i) for i, d in enumerate(down)]
        if self.cond_only and self.cfg and not guess_mode:
            keep = torch.ones(sample.shape[0], 1, 1, 1, dtype=mid.dtype, device=mid.device)
            keep[: sample.shape[0] // 2] = 0
            down, mid = [d * keep for d in down], mid * keep
        return down, mid


@dataclass
class PreparedUnit:
    index: int  # "ControlNet {index}" in the infotext
    net: object  # ControlNetModel
    detected: Image.Image  # the preprocessed map (what the preview shows)
    weight: float
    start: float
    end: float
    mode: str
    resize_mode: str
    hr_option: str


@dataclass
class ControlSet:
    """The units of one pass: control images at ``size``; ``sample_batch`` calls ``pipeline`` and ``finish_args``."""
    units: list[PreparedUnit]
    size: tuple[int, int]
    nets: list[UnitNet] = field(default_factory=list)

    def __post_init__(self):
        if not self.nets:
            guess = self.guess_mode
            self.nets = [UnitNet(u.net, soft=u.mode != "Balanced" and not guess,
                                 cond_only=u.mode == "ControlNet is more important" and not guess)
                         for u in self.units]

    @property
    def guess_mode(self) -> bool:
        return bool(self.units) and all(u.mode == "ControlNet is more important" for u in self.units)

    def images(self) -> list[Image.Image]:
        w, h = self.size
        modes = {"Just Resize": 0, "Crop and Resize": 1, "Resize and Fill": 2}
        return [resize_image(u.detected, w, h, modes[u.resize_mode]) for u in self.units]

    def for_pass(self, second: bool, size: tuple[int, int]) -> ControlSet | None:
        """The units of hires fix's first or second pass (the extension's hr_option), at that pass's size."""
        skip = "Low res only" if second else "High res only"
        keep = [(u, n) for u, n in zip(self.units, self.nets) if u.hr_option != skip]
        if not keep:
            return None
        return ControlSet([u for u, _ in keep], size, [n for _, n in keep])

    def resized(self, size: tuple[int, int]) -> ControlSet:
        return replace(self, size=size)

    def pipeline(self, model, kind: str, device):
        """The model's ControlNet pipeline of this kind (built once from its plain pipeline, kept on the model)."""
        import diffusers
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        from webui.engine.generation import pipeline_for

        key = f"controlnet-{kind}"
        pipe = model.pipelines.get(key)
        if pipe is None:
            base = pipeline_for(model, "txt2img", device)
            cls = getattr(diffusers, PIPELINES[("sdxl" if model.family == "sdxl" else "sd", kind)])
            pipe = cls.from_pipe(base, controlnet=MultiControlNetModel(self.nets))
            pipe.set_progress_bar_config(disable=True)
            model.pipelines[key] = pipe
        if pipe.vae is not model.components["vae"]:
            pipe.register_modules(vae=model.components["vae"])
        pipe.register_modules(controlnet=MultiControlNetModel(self.nets))
        return pipe

    def finish_args(self, pipe, kind: str, spec, args: dict) -> None:
        """Add the units' arguments to a pipeline call's ``args`` (and drop what this pipeline does not take)."""
        for net in self.nets:
            net.cfg = spec.cfg_scale > 1.0
        images = self.images()
        args["image" if kind == "txt2img" else "control_image"] = images
        args.update(controlnet_conditioning_scale=[u.weight for u in self.units],
                    control_guidance_start=[u.start for u in self.units],
                    control_guidance_end=[u.end for u in self.units], guess_mode=self.guess_mode)
        accepted = set(inspect.signature(type(pipe).__call__).parameters)
        for key in [k for k in args if k not in accepted]:
            del args[key]

    @property
    def steps_applied(self) -> list[int]:
        return [n.steps_applied for n in self.nets]
