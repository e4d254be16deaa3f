"""The X/Y/Z plot's axes: A1111 1.10's list, in its order (clients send an axis as an index into the list of their
tab: txt2img 0 Nothing, 1 Seed, ... 7 Prompt S/R, 9 Sampler, 11 Checkpoint name, 17 Schedule type ...). Each axis
says how its values are read, checked (before the queue) and applied to a copy of the request; axes this engine
has no setting for stay in the list (so the indexes match A1111's) and are refused by name when chosen."""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Callable

from webui.engine.requests import GenerationRequest, RequestError

TXT2IMG, IMG2IMG, BOTH = ("txt2img",), ("img2img",), ("txt2img", "img2img")
MAX_ORDER_TOKENS = 6  # "Prompt order" plots every permutation: 6 tokens are 720 cells


@dataclass(frozen=True)
class Axis:
    label: str
    kind: str = "str"  # int | float | str | order (permutations of the values)
    apply: Callable | None = None  # fn(request, value, all values) -> request (a changed copy); None: not supported
    modes: tuple[str, ...] = BOTH
    cost: float = 0.0  # the costliest axis is the outermost loop (a checkpoint loads once per value)
    choices: Callable | None = None  # fn(ctx) -> the values a UI offers
    confirm: Callable | None = None  # fn(ctx, values) -> values checked (and normalised: a checkpoint's title)
    label_value: bool = True  # the grid label is "Label: value" (else the value alone)

    @property
    def supported(self) -> bool:
        return self.apply is not None

    def format(self, value) -> str:
        if self.label == "Nothing":
            return ""
        if self.kind == "order":
            return ", ".join(value)
        if self.label in ("Checkpoint name", "Refiner checkpoint"):
            value = os.path.basename(str(value))
        if isinstance(value, float):
            value = round(value, 8)
        return f"{self.label}: {value}" if self.label_value else str(value)


def field(name: str):
    return lambda req, value, values: replace(req, **{name: value})


def apply_prompt_sr(req: GenerationRequest, value: str, values: list) -> GenerationRequest:
    search = values[0]
    return replace(req, prompt=req.prompt.replace(search, value),
                   negative_prompt=req.negative_prompt.replace(search, value))


def apply_order(req: GenerationRequest, order: tuple, values: list) -> GenerationRequest:
    """The tokens put back into the prompt's token places in the given order."""
    prompt, parts = req.prompt, []
    for _, token in sorted((req.prompt.find(t), t) for t in order):
        at = prompt.find(token)
        parts.append(prompt[:at])
        prompt = prompt[at + len(token):]
    return replace(req, prompt="".join(part + order[i] for i, part in enumerate(parts)) + prompt)


def apply_vae(req: GenerationRequest, value: str, values: list) -> GenerationRequest:
    return replace(req, override_settings={**req.override_settings, "sd_vae": value})


def apply_styles(req: GenerationRequest, value: str, values: list) -> GenerationRequest:
    return replace(req, styles=[*req.styles, *(s.strip() for s in value.split(",") if s.strip())])


def apply_face_restore(req: GenerationRequest, value: str, values: list) -> GenerationRequest:
    text = value.strip().lower()
    models = {"codeformer": "CodeFormer", "gfpgan": "GFPGAN", "restoreformer": "RestoreFormer"}
    if text in models:
        return replace(req, restore_faces=True,
                       override_settings={**req.override_settings, "face_restoration_model": models[text]})
    return replace(req, restore_faces=text in ("true", "yes", "y", "1"))


def apply_size(req: GenerationRequest, value: str, values: list) -> GenerationRequest:
    width, _, height = value.lower().partition("x")
    return replace(req, width=int(width), height=int(height))


def confirm_size(ctx, values: list) -> list:
    for v in values:
        w, sep, h = v.lower().partition("x")
        if not (sep and w.strip().isdigit() and h.strip().isdigit()):
            raise RequestError(f"Size: {v!r} is not a size like 512x768")
    return [v.lower().replace(" ", "") for v in values]


def _resolver(method: str):
    return lambda ctx, values: [getattr(ctx, method)(v) for v in values]


def confirm_schedule(ctx, values: list) -> list:
    names = ctx.schedule_names()
    by_lower = {n.lower(): n for n in names}
    for v in values:
        if v.lower() not in by_lower:
            raise RequestError(f"Schedule type: {v!r} not found (choices: {', '.join(names)})")
    return [by_lower[v.lower()] for v in values]


def confirm_order(ctx, values: list) -> list:
    if len(values) > MAX_ORDER_TOKENS:
        raise RequestError(f"Prompt order: at most {MAX_ORDER_TOKENS} tokens (got {len(values)})")
    return list(itertools.permutations(values))


def unsupported(label: str, kind: str = "float", modes=BOTH, cost: float = 0.0) -> Axis:
    return Axis(label, kind, None, modes, cost)


AXES: tuple[Axis, ...] = (
    Axis("Nothing", "str", lambda req, value, values: req, label_value=False),
    Axis("Seed", "int", field("seed")),
    Axis("Var. seed", "int", field("subseed")),
    Axis("Var. strength", "float", field("subseed_strength")),
    Axis("Steps", "int", field("steps")),
    Axis("Hires steps", "int", field("hr_second_pass_steps"), TXT2IMG),
    Axis("CFG Scale", "float", field("cfg_scale")),
    unsupported("Image CFG Scale", modes=IMG2IMG),
    Axis("Prompt S/R", "str", apply_prompt_sr, label_value=False),
    Axis("Prompt order", "order", apply_order),
    Axis("Sampler", "str", field("sampler_name"), TXT2IMG, choices=lambda ctx: ctx.sampler_names(),
         confirm=_resolver("resolve_sampler"), label_value=False),
    Axis("Hires sampler", "str", field("hr_sampler_name"), TXT2IMG, choices=lambda ctx: ctx.sampler_names(),
         confirm=_resolver("resolve_sampler")),
    Axis("Sampler", "str", field("sampler_name"), IMG2IMG, choices=lambda ctx: ctx.sampler_names(),
         confirm=_resolver("resolve_sampler"), label_value=False),
    Axis("Checkpoint name", "str", field("checkpoint"), cost=1.0, choices=lambda ctx: ctx.checkpoint_titles(),
         confirm=_resolver("resolve_checkpoint")),
    unsupported("Negative Guidance minimum sigma"),
    unsupported("Sigma Churn"),
    unsupported("Sigma min"),
    unsupported("Sigma max"),
    unsupported("Sigma noise"),
    Axis("Schedule type", "str", field("scheduler"), choices=lambda ctx: ctx.schedule_names(),
         confirm=confirm_schedule),
    unsupported("Schedule min sigma"),
    unsupported("Schedule max sigma"),
    unsupported("Schedule rho"),
    unsupported("Skip Early CFG"),
    unsupported("Beta schedule alpha"),
    unsupported("Beta schedule beta"),
    Axis("Eta", "float", field("eta")),
    Axis("Clip skip", "int", field("clip_skip")),
    Axis("Denoising", "float", field("denoising_strength")),
    unsupported("Initial noise multiplier"),
    unsupported("Extra noise"),
    Axis("Hires upscaler", "str", field("hr_upscaler"), TXT2IMG, choices=lambda ctx: ctx.upscaler_names(latent=True),
         confirm=_resolver("resolve_hires_upscaler")),
    unsupported("Cond. Image Mask Weight", modes=IMG2IMG),
    Axis("VAE", "str", apply_vae, cost=0.7, choices=lambda ctx: ctx.vae_choices(), confirm=_resolver("resolve_vae")),
    Axis("Styles", "str", apply_styles, choices=lambda ctx: ctx.style_names()),
    unsupported("UniPC Order", "int", cost=0.5),
    Axis("Face restore", "str", apply_face_restore, label_value=False),
    unsupported("Token merging ratio"),
    unsupported("Token merging ratio high-res"),
    unsupported("Always discard next-to-last sigma", "str"),
    unsupported("SGM noise multiplier", "str"),
    unsupported("Refiner checkpoint", "str", cost=1.0),
    unsupported("Refiner switch at"),
    unsupported("RNG source", "str"),
    unsupported("FP8 mode", "str", cost=0.9),
    Axis("Size", "str", apply_size, confirm=confirm_size),
)


def axes_for(mode: str) -> list[Axis]:
    return [a for a in AXES if mode in a.modes]


def find_axis(mode: str, given) -> Axis:
    """An axis by its index in the tab's list (A1111's API) or by its label; RequestError otherwise."""
    axes = axes_for(mode)
    if isinstance(given, bool):
        given = None
    if isinstance(given, float) and given == int(given):
        given = int(given)
    if isinstance(given, str) and given.strip().lstrip("-").isdigit():
        given = int(given.strip())
    if isinstance(given, int):
        if 0 <= given < len(axes):
            return axes[given]
    elif isinstance(given, str):
        for axis in axes:
            if axis.label.lower() == given.strip().lower():
                return axis
    raise RequestError(f"X/Y/Z plot: axis type {given!r} not found for {mode} (an index from 0 to {len(axes) - 1}, "
                       f"or a name: {', '.join(a.label for a in axes)})")
