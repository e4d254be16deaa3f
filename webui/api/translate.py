"""A1111 request bodies -> GenerationRequest, and GenerationResult -> A1111 response bodies. The engine plans,
generates, inpaints and saves; this module only speaks A1111's dialect (its field names and defaults,
override_settings, a pasted infotext, the response's `info`)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from webui.api import controlnet, registries
from webui.api.errors import ApiError, unsupported, validation_message
from webui.api.images import decode_image, encode_png, flatten
from webui.api.options import ApiOptions, resolve_checkpoint
from webui.api.schemas import GenerationBody
from webui.engine.infotext import MAX_PARAMS_LINE_CHARS, parse_infotext, typed_params
from webui.engine.requests import MAX_PROMPT_CHARS, MAX_SEED_VALUE, GenerationRequest, GenerationResult, check_text

# A pasted infotext: a prompt, a negative prompt and a params line, each at its own cap
MAX_INFOTEXT_CHARS = 2 * MAX_PROMPT_CHARS + MAX_PARAMS_LINE_CHARS


def _off(value) -> bool:
    return not value


def _is(*allowed):
    return lambda v: v is None or v in allowed


# (field, accepted when, why) -- a request that sets one of these otherwise gets a 422 naming the field
COMMON_UNSUPPORTED = (
    ("seed_resize_from_h", lambda v: v is None or v <= 0, "seed resize is not available"),
    ("seed_resize_from_w", lambda v: v is None or v <= 0, "seed resize is not available"),
    ("s_churn", _is(0), "sampler parameter overrides are not available"),
    ("s_tmin", _is(0), "sampler parameter overrides are not available"),
    ("s_tmax", lambda v: v is None or v == 0 or math.isinf(v), "sampler parameter overrides are not available"),
    ("s_noise", _is(1), "sampler parameter overrides are not available"),
    ("s_min_uncond", _is(0), "sampler parameter overrides are not available"),
    ("refiner_checkpoint", lambda v: not v or v == "None", "the refiner is not available"),
    ("firstpass_image", _off, "a first-pass image is not available"),
)
TXT2IMG_UNSUPPORTED = ()
IMG2IMG_UNSUPPORTED = (
    ("resize_mode", _is(0, 1, 2), "supported: 0 just resize, 1 crop and resize, 2 resize and fill"),
    ("initial_noise_multiplier", _is(1), "only 1.0 is supported"),
    ("latent_mask", _off, "a separate latent mask is not available"),
)

# infotext key -> request field (A1111 applies a pasted infotext to the fields the request does not set)
INFOTEXT_FIELDS = {
    "Prompt": "prompt", "Negative prompt": "negative_prompt", "Steps": "steps", "Sampler": "sampler_name",
    "Schedule type": "scheduler", "CFG scale": "cfg_scale", "Seed": "seed", "Size-1": "width", "Size-2": "height",
    "Variation seed": "subseed", "Variation seed strength": "subseed_strength",
    "Denoising strength": "denoising_strength", "Tiling": "tiling",
    "Hires upscale": "hr_scale", "Hires resize-1": "hr_resize_x", "Hires resize-2": "hr_resize_y",
    "Hires steps": "hr_second_pass_steps", "Hires upscaler": "hr_upscaler", "Hires sampler": "hr_sampler_name",
    "Hires schedule type": "hr_scheduler", "Hires CFG Scale": "hr_cfg", "Hires prompt": "hr_prompt",
    "Hires negative prompt": "hr_negative_prompt", "Hires checkpoint": "hr_checkpoint_name",
}


@dataclass
class ApiCall:
    """One generation call: the engine request it became, and what the answer needs."""
    mode: str  # txt2img | img2img
    request: GenerationRequest
    send_images: bool
    echo: dict
    restore_checkpoint: str | None = None
    styles: list[str] = field(default_factory=list)
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
    if any(key.startswith("Hires ") for key in parsed) and "enable_hr" in type(body).model_fields \
            and "enable_hr" not in body.model_fields_set:
        pasted["enable_hr"] = True
    if parsed.get("Face restoration") and "restore_faces" not in body.model_fields_set:
        pasted["restore_faces"] = True
    pasted = {k: v for k, v in pasted.items() if k in type(body).model_fields}  # img2img has no hires fields
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


def _check_scripts(engine, values: dict, mode: str) -> None:
    """script_name must name a script of this tab (A1111: 422); alwayson_scripts other than ControlNet (built in)
    may only hold entries that change nothing, since none are installed: an entry whose units are all disabled."""
    name, args = values.get("script_name"), values.get("script_args")
    if name:
        if not isinstance(name, str) or name.strip().lower() not in engine.list_scripts(mode):
            raise ApiError(422, f"script_name: script {name!r} not found; the {mode} scripts are: "
                                f"{', '.join(engine.list_scripts(mode)) or 'none'}")
    elif args:
        raise ApiError(422, "script_args given without a script_name")
    for key, entry in (values.get("alwayson_scripts") or {}).items():
        if isinstance(key, str) and key.lower() == "controlnet":
            continue  # sd-webui-controlnet's units: webui/api/controlnet.py
        if not _inert(entry):
            raise ApiError(422, f"alwayson_scripts: script {key!r} is not installed here (of the always-on "
                                f"scripts only ControlNet is built in), "
                                f"and this entry would change the result; only entries whose units are all disabled "
                                f"(\"enabled\": false) are accepted")


def _inert(entry) -> bool:
    """An always-on script's entry that asks for nothing: {"args": [unit, ...]} with every unit "enabled": false
    (ControlNet's units, and other extensions' that follow it)."""
    units = entry.get("args") if isinstance(entry, dict) else None
    return isinstance(units, list) and bool(units) and all(
        isinstance(u, dict) and u.get("enabled") is False for u in units)


def _size(values: dict, name: str) -> int:
    v = _get(values, name, 512)
    if v < 64:
        raise ApiError(422, f"{name} must be at least 64 (got {v})")
    return int(v) - int(v) % 8  # A1111 renders multiples of 8 (the latent is 1/8 of the image)


def prepare(engine, options: ApiOptions, body: GenerationBody, mode: str) -> ApiCall:
    """The A1111 body as an engine request. What the engine knows how to check (sampler, styles, LoRAs, VAE, value
    ranges) it checks once, when the request is submitted; here only what is A1111-API specific."""
    values = _values(body)
    _check_unsupported(values, COMMON_UNSUPPORTED)
    _check_unsupported(values, TXT2IMG_UNSUPPORTED if mode == "txt2img" else IMG2IMG_UNSUPPORTED)
    _check_scripts(engine, values, mode)
    checkpoint, restore, clip_skip, overrides = _overrides(engine, options, values)
    prompt, negative = _get(values, "prompt", ""), _get(values, "negative_prompt", "")
    check_text("prompt", prompt)  # before anything reads a giant prompt
    check_text("negative_prompt", negative)
    if values.get("disable_extra_networks") and registries.LORA_TAG.search(prompt + negative):
        raise unsupported("disable_extra_networks", True, "extra network tags cannot be switched off yet")
    registries.check_network_kinds(prompt, negative)
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, styles=list(values.get("styles") or []),
        seed=_get(values, "seed", -1), subseed=_get(values, "subseed", -1),
        subseed_strength=float(_get(values, "subseed_strength", 0.0)),
        sampler_name=values.get("sampler_name") or values.get("sampler_index") or "Euler",
        scheduler=values.get("scheduler"), steps=_get(values, "steps", 50),
        cfg_scale=float(_get(values, "cfg_scale", 7.0)), width=_size(values, "width"), height=_size(values, "height"),
        batch_size=_get(values, "batch_size", 1), n_iter=_get(values, "n_iter", 1), clip_skip=clip_skip,
        eta=values.get("eta"), checkpoint=checkpoint, override_settings=overrides, tiling=bool(values.get("tiling")),
        restore_faces=bool(values.get("restore_faces")),
        save_images=bool(values.get("save_images")) or options.always_save,
        script_name=values.get("script_name") or None, script_args=list(values.get("script_args") or []))
    request.batch_grid = request.save_images  # as A1111's API (do_not_save_grid = not save_images)
    request.controlnet_units = controlnet.units_from_body(values)
    if mode == "txt2img" and values.get("enable_hr"):
        _hires(request, values)
    call = ApiCall(mode=mode, request=request, send_images=bool(_get(values, "send_images", True)),
                   echo=body.model_dump(), restore_checkpoint=restore, styles=request.styles,
                   timestamp=time.strftime("%Y%m%d%H%M%S"))
    if mode == "img2img":
        # sizes, steps, seeds ... checked before the images are decoded (a width of 16384 would otherwise
        # allocate gigabytes first); the engine checks again, with the images, when the job is submitted
        request.validate(engine.settings.max_image_side, engine.settings.max_batch_images)
        _img2img(call, values)
    return call


def _overrides(engine, options: ApiOptions, values: dict) -> tuple[str | None, str | None, int, dict]:
    """override_settings -> (checkpoint title, title to switch back to afterwards, clip skip, engine overrides);
    anything else only when it changes nothing."""
    checkpoint, clip_skip, overrides = None, options.clip_skip, {}
    for key, value in (values.get("override_settings") or {}).items():
        got = options.override(key, value)
        if got is None:
            continue
        if got[0] == "checkpoint":
            checkpoint = value
        elif got[0] == "vae":
            overrides["sd_vae"] = got[1]
        elif got[0] == "job":
            overrides[key] = got[1]
        else:
            clip_skip = got[1]
    restore, active = None, engine.active_model()
    if checkpoint:
        checkpoint = resolve_checkpoint(engine, checkpoint, "override_settings.sd_model_checkpoint").title
        if _get(values, "override_settings_restore_afterwards", True) and active is not None \
                and active.title != checkpoint:
            restore = active.title
    elif active is not None:
        # run on the model that is current now, even if a request queued before this one overrides it for itself
        # (A1111 switches back before serving the next request)
        checkpoint = active.title
    return checkpoint, restore, clip_skip, overrides


def _hires(req: GenerationRequest, values: dict) -> None:
    """txt2img's hires fix. Before A1111 1.0, width/height were the final size and firstphase_width/height the
    first pass's: such a request gets the same two sizes."""
    req.enable_hr = True
    req.hr_scale = float(_get(values, "hr_scale", 2.0))
    req.hr_resize_x, req.hr_resize_y = _get(values, "hr_resize_x", 0), _get(values, "hr_resize_y", 0)
    if _get(values, "firstphase_width", 0) > 0 and _get(values, "firstphase_height", 0) > 0:
        req.hr_resize_x, req.hr_resize_y = req.width, req.height
        req.width, req.height = _size(values, "firstphase_width"), _size(values, "firstphase_height")
    req.hr_upscaler = values.get("hr_upscaler") or "Latent"
    req.hr_second_pass_steps = _get(values, "hr_second_pass_steps", 0)
    req.hr_sampler_name, req.hr_scheduler = values.get("hr_sampler_name"), values.get("hr_scheduler")
    req.hr_prompt, req.hr_negative_prompt = values.get("hr_prompt") or "", values.get("hr_negative_prompt") or ""
    req.hr_checkpoint_name, req.hr_cfg = values.get("hr_checkpoint_name"), values.get("hr_cfg")
    req.denoising_strength = float(_get(values, "denoising_strength", 0.75))


def _img2img(call: ApiCall, values: dict) -> None:
    """Init images and mask decoded; resizing, mask handling and the overlay are the engine's (the same as the
    img2img tab's), with the A1111 API's defaults."""
    req = call.request
    sources = values.get("init_images") or []
    if not sources:
        raise ApiError(422, "init_images: img2img needs at least one image")
    req.init_images = [flatten(decode_image(s, f"init_images[{i}]")) for i, s in enumerate(sources)]
    req.resize_mode = _get(values, "resize_mode", 0)
    req.denoising_strength = float(_get(values, "denoising_strength", 0.75))
    if not call.echo.get("include_init_images"):
        call.echo["init_images"] = None
        call.echo["mask"] = None
    call.echo.pop("include_init_images", None)
    if not values.get("mask"):
        return
    req.mask = decode_image(values["mask"], "mask")
    blur = values.get("mask_blur")
    req.mask_blur_x = blur if blur is not None else _get(values, "mask_blur_x", 4)
    req.mask_blur_y = blur if blur is not None else _get(values, "mask_blur_y", 4)
    req.inpainting_fill = _get(values, "inpainting_fill", 0)
    req.inpaint_full_res = bool(_get(values, "inpaint_full_res", True))
    req.inpaint_full_res_padding = _get(values, "inpaint_full_res_padding", 0)
    req.inpainting_mask_invert = _get(values, "inpainting_mask_invert", 0)


# ---- results -------------------------------------------------------------------------------------------------

def info_json(engine, call: ApiCall, result: GenerationResult) -> str:
    req = call.request
    params = result.params or {}
    first = result.index_of_first_image  # grids come first: A1111's all_* lists are of the images after them
    seeds = result.seeds[first:] or result.seeds or [req.seed]
    subseeds = result.subseeds[first:] or result.subseeds or [req.subseed]
    prompts = result.prompts[first:] or result.prompts or [req.prompt]
    negatives = result.negative_prompts[first:] or result.negative_prompts or [req.negative_prompt]
    main = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version", "Clip skip",
            "Denoising strength", "Variation seed", "Variation seed strength"}
    extra = {k: v for k, v in params.items() if k not in main and v is not None}
    active = engine.active_model()
    info = {
        "prompt": prompts[0], "all_prompts": prompts,
        "negative_prompt": negatives[0], "all_negative_prompts": negatives,
        "seed": seeds[0], "all_seeds": seeds, "subseed": subseeds[0], "all_subseeds": subseeds,
        "subseed_strength": req.subseed_strength,
        "width": result.width or req.width, "height": result.height or req.height,
        "sampler_name": params.get("Sampler", req.sampler_name), "cfg_scale": req.cfg_scale, "steps": req.steps,
        "batch_size": req.batch_size, "restore_faces": req.restore_faces,
        "face_restoration_model": params.get("Face restoration"),
        "sd_model_name": params.get("Model"), "sd_model_hash": params.get("Model hash"),
        "sd_vae_name": params.get("VAE"), "sd_vae_hash": params.get("VAE hash"), "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": req.denoising_strength if call.mode == "img2img" else None,
        "extra_generation_params": extra, "index_of_first_image": first, "infotexts": result.infotexts,
        "styles": call.styles, "job_timestamp": call.timestamp, "clip_skip": req.clip_skip,
        "is_using_inpainting_conditioning": bool(active is not None and active.title == result.model_title
                                                 and active.spec.inpaint),
        "version": params.get("Version"),
        "interrupted": result.interrupted, "skipped": result.skipped, "warnings": list(result.warnings),
    }
    return json.dumps(info, default=str)


def response_body(engine, call: ApiCall, result: GenerationResult) -> dict:
    images = [encode_png(im, info) for im, info in zip(result.images, result.infotexts)] if call.send_images else []
    return {"images": images, "parameters": call.echo, "info": info_json(engine, call, result)}
