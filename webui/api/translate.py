"""A1111 request bodies -> GenerationRequest, and GenerationResult -> A1111 response bodies.

Everything here runs before the job is queued (bad input never reaches the queue) or after it finished."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps
from pydantic import ValidationError

from webui.api import registries
from webui.api.errors import ApiError, unsupported, validation_message
from webui.api.images import (Overlay, blur_mask, crop_region, decode_image, encode_png, fill_masked, flatten,
                              mask_from_image)
from webui.api.options import ApiOptions, resolve_checkpoint
from webui.api.schemas import GenerationBody, Img2ImgRequest
from webui.engine import noise
from webui.engine.generation import resize_image
from webui.engine.infotext import MAX_PARAMS_LINE_CHARS, build_infotext, parse_infotext, typed_params
from webui.engine.requests import MAX_PROMPT_CHARS, MAX_SEED_VALUE, GenerationRequest, GenerationResult, check_text
from webui.engine.samplers import resolve

MASKED_CONTENT = {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}
# A pasted infotext: a prompt, a negative prompt and a params line, each at its own cap
MAX_INFOTEXT_CHARS = 2 * MAX_PROMPT_CHARS + MAX_PARAMS_LINE_CHARS


def _off(value) -> bool:
    return not value


def _is(*allowed):
    return lambda v: v is None or v in allowed


# (field, accepted when, why) -- a request that sets one of these otherwise gets a 422 naming the field
COMMON_UNSUPPORTED = (
    ("restore_faces", _off, "face restoration is not available"),
    ("tiling", _off, "tiling is not available"),
    ("seed_resize_from_h", lambda v: v is None or v <= 0, "seed resize is not available"),
    ("seed_resize_from_w", lambda v: v is None or v <= 0, "seed resize is not available"),
    ("s_churn", _is(0), "sampler parameter overrides are not available"),
    ("s_tmin", _is(0), "sampler parameter overrides are not available"),
    ("s_tmax", lambda v: v is None or v == 0 or math.isinf(v), "sampler parameter overrides are not available"),
    ("s_noise", _is(1), "sampler parameter overrides are not available"),
    ("s_min_uncond", _is(0), "sampler parameter overrides are not available"),
    ("refiner_checkpoint", lambda v: not v or v == "None", "the refiner is not available"),
    ("firstpass_image", _off, "a first-pass image is not available"),
    ("script_args", _off, "no scripts are installed (script_args must be empty)"),
)
TXT2IMG_UNSUPPORTED = (
    ("enable_hr", _off, "hires fix is not available yet"),
)
IMG2IMG_UNSUPPORTED = (
    ("resize_mode", _is(0, 1, 2), "supported: 0 just resize, 1 crop and resize, 2 resize and fill"),
    ("inpainting_fill", _is(0, 1), "supported masked content: 0 fill, 1 original"),
    ("initial_noise_multiplier", _is(1), "only 1.0 is supported"),
    ("latent_mask", _off, "a separate latent mask is not available"),
    ("inpainting_mask_invert", _is(0, 1), "0 = inpaint masked, 1 = inpaint not masked"),
)

# infotext key -> request field (A1111 applies a pasted infotext to the fields the request does not set)
INFOTEXT_FIELDS = {
    "Prompt": "prompt", "Negative prompt": "negative_prompt", "Steps": "steps", "Sampler": "sampler_name",
    "Schedule type": "scheduler", "CFG scale": "cfg_scale", "Seed": "seed", "Size-1": "width", "Size-2": "height",
    "Variation seed": "subseed", "Variation seed strength": "subseed_strength",
    "Denoising strength": "denoising_strength",
}


@dataclass
class Plan:
    """Everything the API decided before queueing a job, and what to do with the result."""
    mode: str  # txt2img | img2img
    request: GenerationRequest
    save: bool  # the client's wish (save_images or the always-save option)
    send_images: bool
    echo: dict
    overlays: list[Overlay] | None = None  # img2img with a mask: put the result back over the original
    extra_params: dict = field(default_factory=dict)  # infotext additions (mask settings)
    restore_checkpoint: str | None = None
    clip_skip: int = 1
    styles: list[str] = field(default_factory=list)
    inpaint_model: bool = False
    timestamp: str = ""


def _values(body: GenerationBody) -> dict[str, Any]:
    """Request fields, with a pasted infotext applied to the fields the client did not set."""
    values = body.model_dump()
    if body.infotext:
        pasted = _pasted(body)
        if "sampler_name" in pasted:
            values["sampler_index"] = None
        values.update(pasted)
    return values


def _pasted(body: GenerationBody) -> dict[str, Any]:
    """The fields a pasted infotext sets (those the client did not set), checked like the body's own: a value
    that does not fit ("Seed: nan") is a 422 naming the infotext and the field."""
    text = body.infotext
    if len(text) > MAX_INFOTEXT_CHARS or len(text.strip().rpartition("\n")[2]) > MAX_PARAMS_LINE_CHARS:
        raise ApiError(422, f"infotext is too long ({len(text)} characters; at most {MAX_INFOTEXT_CHARS}, and "
                            f"{MAX_PARAMS_LINE_CHARS} in its last line)")
    parsed = typed_params(parse_infotext(text, defaults=False))
    pasted = {name: parsed[key] for key, name in INFOTEXT_FIELDS.items()
              if key in parsed and name not in body.model_fields_set and parsed[key] != ""}
    if "Clip skip" in parsed and "override_settings" not in body.model_fields_set:
        pasted["override_settings"] = {"CLIP_stop_at_last_layers": parsed["Clip skip"]}
    try:
        checked = type(body).model_validate(pasted)
    except ValidationError as exc:
        raise ApiError(422, f"infotext: {validation_message(exc.errors())}") from None
    for name in ("seed", "subseed"):
        if name in pasted and not -1 <= getattr(checked, name) <= MAX_SEED_VALUE:
            raise ApiError(422, f"infotext: {name} must be -1 (random) or an integer from 0 to {MAX_SEED_VALUE} "
                                f"(got {getattr(checked, name)})")
    return {name: getattr(checked, name) for name in pasted}


def _get(values: dict, name: str, default):
    v = values.get(name)
    return default if v is None else v


def _check_unsupported(values: dict, table) -> None:
    for name, ok, why in table:
        value = values.get(name)
        try:
            accepted = ok(value)
        except TypeError:
            accepted = False
        if not accepted:
            raise unsupported(name, value, why)


def _check_scripts(values: dict) -> None:
    name = values.get("script_name")
    if name:
        raise ApiError(422, f"script_name: script {name!r} not found (no scripts are installed)")
    always = values.get("alwayson_scripts") or {}
    if always:
        raise ApiError(422, f"alwayson_scripts: script(s) {', '.join(map(repr, always))} not found (no always-on "
                            f"scripts are installed)")


def _seed(values: dict, name: str) -> int:
    v = values.get(name)
    if v is None or v == -1:
        return noise.fix_seed(-1)
    if v < 0:
        raise ApiError(422, f"{name} must be -1 (random) or a non-negative integer (got {v})")
    return int(v)


def _size(values: dict, name: str) -> int:
    v = _get(values, name, 512)
    if v < 64:
        raise ApiError(422, f"{name} must be at least 64 (got {v})")
    return int(v) - int(v) % 8  # A1111 renders multiples of 8 (the latent is 1/8 of the image)


def prepare(engine, options: ApiOptions, body: GenerationBody, mode: str) -> Plan:
    values = _values(body)
    _check_unsupported(values, COMMON_UNSUPPORTED)
    _check_unsupported(values, TXT2IMG_UNSUPPORTED if mode == "txt2img" else IMG2IMG_UNSUPPORTED)
    _check_scripts(values)

    # override_settings: the checkpoint and clip skip; anything else only when it changes nothing
    checkpoint, clip_skip, overrides = None, options.clip_skip, {}
    for key, value in (values.get("override_settings") or {}).items():
        got = options.override(key, value)
        if got is None:
            continue
        if got[0] == "checkpoint":
            checkpoint = value
        elif got[0] == "vae":
            overrides["sd_vae"] = got[1]
        else:
            clip_skip = got[1]
    restore = None
    active = engine.models.active
    if checkpoint:
        info = resolve_checkpoint(engine, checkpoint, "override_settings.sd_model_checkpoint")  # 404 naming it
        checkpoint = info.title
        if _get(values, "override_settings_restore_afterwards", True) and active is not None and active.title != checkpoint:
            restore = active.title
    elif active is not None:
        # run on the model that is current now, even if a request queued before this one overrides it for itself
        # (A1111 switches back before serving the next request)
        checkpoint = active.title

    sampler = values.get("sampler_name") or values.get("sampler_index") or "Euler"
    choice = resolve(sampler, values.get("scheduler"), engine.settings.default_sampler)  # 404 naming valid ones

    prompt, negative = _get(values, "prompt", ""), _get(values, "negative_prompt", "")
    check_text("prompt", prompt)  # before anything reads a giant prompt (the engine checks again)
    check_text("negative_prompt", negative)
    styles = list(values.get("styles") or [])
    registries.check_styles(engine, styles)
    if values.get("disable_extra_networks") and registries.LORA_TAG.search(prompt + negative):
        raise unsupported("disable_extra_networks", True, "extra network tags cannot be switched off yet")
    registries.check_extra_networks(engine, prompt, negative)

    save = bool(values.get("save_images")) or options.always_save
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, styles=styles,
        seed=_seed(values, "seed"), subseed=_seed(values, "subseed"),
        subseed_strength=float(_get(values, "subseed_strength", 0.0)),
        sampler_name=choice.sampler.name, scheduler=choice.requested_schedule,
        steps=_get(values, "steps", 50), cfg_scale=float(_get(values, "cfg_scale", 7.0)),
        width=_size(values, "width"), height=_size(values, "height"),
        batch_size=_get(values, "batch_size", 1), n_iter=_get(values, "n_iter", 1),
        clip_skip=clip_skip, eta=values.get("eta"), checkpoint=checkpoint, save_images=save,
        override_settings=overrides,
    )
    echo = body.model_dump()
    plan = Plan(mode=mode, request=request, save=save, send_images=bool(_get(values, "send_images", True)),
                echo=echo, restore_checkpoint=restore, clip_skip=clip_skip, styles=styles,
                timestamp=time.strftime("%Y%m%d%H%M%S"))
    if mode == "img2img":
        # sizes, steps, seeds ... checked before the images are decoded and resized to width x height (a width of
        # 16384 would otherwise allocate gigabytes first); the engine checks again, with the images, when queueing
        request.validate(engine.settings.max_image_side, engine.settings.max_batch_images)
        _prepare_img2img(plan, values, body)
    return plan


def _prepare_img2img(plan: Plan, values: dict, body: Img2ImgRequest) -> None:
    req = plan.request
    sources = values.get("init_images") or []
    if not sources:
        raise ApiError(422, "init_images: img2img needs at least one image")
    width, height = req.width, req.height
    resize_mode = _get(values, "resize_mode", 0)
    originals = [resize_image(flatten(decode_image(s, f"init_images[{i}]")), width, height, resize_mode)
                 for i, s in enumerate(sources)]
    req.denoising_strength = float(_get(values, "denoising_strength", 0.75))
    req.resize_mode = 0  # already at the output size
    req.init_images = originals
    if not plan.echo.get("include_init_images"):
        plan.echo["init_images"] = None
        plan.echo["mask"] = None
    plan.echo.pop("include_init_images", None)
    if not values.get("mask"):
        return

    mask = mask_from_image(decode_image(values["mask"], "mask"))
    invert = _get(values, "inpainting_mask_invert", 0) == 1
    if invert:
        mask = ImageOps.invert(mask)
    mask = resize_image(mask, width, height, resize_mode).convert("L")
    blur = values.get("mask_blur")
    blur_x, blur_y = (blur, blur) if blur is not None else (_get(values, "mask_blur_x", 4), _get(values, "mask_blur_y", 4))
    if min(blur_x, blur_y) < 0 or max(blur_x, blur_y) > 256:
        raise ApiError(422, f"mask_blur must be between 0 and 256 (got {blur_x}, {blur_y})")
    padding = _get(values, "inpaint_full_res_padding", 0)
    if padding < 0:
        raise ApiError(422, f"inpaint_full_res_padding must be >= 0 (got {padding})")
    box = crop_region(mask, padding, width, height) if _get(values, "inpaint_full_res", True) else None
    overlay_mask = blur_mask(mask, blur_x, blur_y)
    plan.overlays = [Overlay(original, overlay_mask, box) for original in originals]
    if box is not None:
        model_inits = [resize_image(o.crop(box), width, height, 2) for o in originals]
        model_mask = resize_image(mask.crop(box), width, height, 2).convert("L")
    else:
        model_inits, model_mask = list(originals), mask
    fill = _get(values, "inpainting_fill", 0)
    if fill == 0:
        model_inits = [fill_masked(im, model_mask) for im in model_inits]
    req.init_images, req.mask = model_inits, model_mask
    req.save_images = False  # the finished picture only exists after the overlay: saved by the API
    plan.extra_params = {
        "Mask blur": blur_x if blur_x == blur_y else None, "Mask blur x": blur_x if blur_x != blur_y else None,
        "Mask blur y": blur_y if blur_x != blur_y else None,
        "Mask mode": "Inpaint not masked" if invert else None, "Masked content": MASKED_CONTENT[fill],
        "Inpaint area": "Only masked" if box is not None else None,
        "Masked area padding": padding if box is not None else None,
    }


# ---- results -------------------------------------------------------------------------------------------------

@dataclass
class Finished:
    images: list[Image.Image]
    infotexts: list[str]


def finish(engine, plan: Plan, result: GenerationResult) -> Finished:
    """Apply the overlay (inpainting), rebuild the infotexts that gained parameters, save what the API saves."""
    images, infotexts = list(result.images), list(result.infotexts)
    if plan.overlays:
        base_seed = plan.request.seed
        for k, image in enumerate(images):
            index = result.seeds[k] - base_seed  # position in the whole job (skipped images leave gaps)
            images[k] = plan.overlays[index % len(plan.overlays)].apply(image)
            params = dict(result.params, Seed=result.seeds[k])
            if plan.request.subseed_strength > 0:
                params["Variation seed"] = result.subseeds[k]
            params.update({k2: v for k2, v in plan.extra_params.items() if v is not None})
            infotexts[k] = build_infotext(result.prompts[k], result.negative_prompts[k], params)
            if plan.save and engine.settings.save_images:
                result.paths.append(engine.outputs.save(images[k], infotexts[k], result.seeds[k], "img2img"))
    return Finished(images, infotexts)


def info_json(engine, plan: Plan, result: GenerationResult, done: Finished) -> str:
    req = plan.request
    params = result.params or {}
    seeds = result.seeds or [req.seed]
    subseeds = result.subseeds or [req.subseed]
    prompts = result.prompts or [req.prompt]
    negatives = result.negative_prompts or [req.negative_prompt]
    main = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version", "Clip skip",
            "Denoising strength", "Variation seed", "Variation seed strength"}
    extra = {k: v for k, v in {**params, **plan.extra_params}.items() if k not in main and v is not None}
    active = engine.models.active
    info = {
        "prompt": prompts[0], "all_prompts": prompts,
        "negative_prompt": negatives[0], "all_negative_prompts": negatives,
        "seed": seeds[0], "all_seeds": seeds, "subseed": subseeds[0], "all_subseeds": subseeds,
        "subseed_strength": req.subseed_strength,
        "width": result.width or req.width, "height": result.height or req.height,
        "sampler_name": params.get("Sampler", req.sampler_name), "cfg_scale": req.cfg_scale, "steps": req.steps,
        "batch_size": req.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": params.get("Model"), "sd_model_hash": params.get("Model hash"),
        "sd_vae_name": params.get("VAE"), "sd_vae_hash": params.get("VAE hash"), "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": req.denoising_strength if plan.mode == "img2img" else None,
        "extra_generation_params": extra, "index_of_first_image": 0, "infotexts": done.infotexts,
        "styles": plan.styles, "job_timestamp": plan.timestamp, "clip_skip": req.clip_skip,
        "is_using_inpainting_conditioning": bool(active is not None and active.title == result.model_title
                                                 and active.spec.inpaint),
        "version": params.get("Version"),
        "interrupted": result.interrupted, "skipped": result.skipped, "warnings": list(result.warnings),
    }
    return json.dumps(info, default=str)


def response_body(engine, plan: Plan, result: GenerationResult) -> dict:
    done = finish(engine, plan, result)
    images = [encode_png(im, info) for im, info in zip(done.images, done.infotexts)] if plan.send_images else []
    return {"images": images, "parameters": plan.echo, "info": info_json(engine, plan, result, done)}
