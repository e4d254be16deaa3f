"""A1111's Extras: post-processing of finished images (upscale by a factor or to a size, with a second upscaler
blended in; then GFPGAN, then CodeFormer, each blended in at its visibility, in A1111's order), for the Extras tab
and /sdapi/v1/extra-*-image(s). Results are saved in outputs/extras-images/ with "Postprocess ..." (and "GFPGAN
visibility", "CodeFormer visibility/weight") keys added to their infotext."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from webui.engine.image_files import read_infotext
from webui.engine.postprocess.upscalers import BUILTIN
from webui.engine.requests import RequestError

MAX_OUTPUT_SIDE = 8192
FACE_FIELDS = (("gfpgan_visibility", "GFPGAN"), ("codeformer_visibility", "CodeFormer"))


@dataclass
class ExtrasRequest:
    """A1111's Extras fields (its API names)."""
    images: list[Image.Image]
    names: list[str] = field(default_factory=list)  # file names of the inputs, where known (outputs keep them)
    resize_mode: int = 0  # 0: scale by upscaling_resize; 1: scale to upscaling_resize_w x _h
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True  # scale to: cut the centre to exactly that size
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    save_images: bool = True


@dataclass
class ExtrasResult:
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)  # each input's own infotext with the Postprocess keys
    sources: list[str] = field(default_factory=list)  # each input's own infotext as it came
    post: str = ""  # the Postprocess keys, as A1111's html_info shows them
    paths: list[Path] = field(default_factory=list)


def check(req: ExtrasRequest, upscalers, faces) -> None:
    """Before the queue: names, ranges, and no face restoration without a model (never a silent no-op)."""
    if not req.images:
        raise RequestError("images: no images given")
    upscalers.resolve(req.upscaler_1, "upscaler_1")
    upscalers.resolve(req.upscaler_2, "upscaler_2")
    for name, kind in FACE_FIELDS:
        if getattr(req, name) > 0:
            faces.check(kind, name)
    if req.resize_mode not in (0, 1):
        raise RequestError(f"resize_mode must be 0 (scale by) or 1 (scale to) (got {req.resize_mode!r})")


def run(req: ExtrasRequest, save, upscalers, faces) -> ExtrasResult:
    """Every image through the upscalers (an UpscalerLibrary) and face restorers (FaceRestorers);
    `save(image, infotext, name) -> path` when the request saves."""
    first, second = upscalers.resolve(req.upscaler_1, "upscaler_1"), upscalers.resolve(req.upscaler_2, "upscaler_2")
    params = _params(req, first, second)
    result = ExtrasResult(post=", ".join(f"{k}: {v}" for k, v in params.items()))
    for index, image in enumerate(req.images):
        out = restore_faces(process(image, req, first, second, upscalers), req, faces)
        source = read_infotext(image) or ""
        info = _with_post(source, result.post)
        if req.save_images:
            name = Path(req.names[index]).stem if index < len(req.names) and req.names[index] else "extras"
            result.paths.append(save(out, info, name))
        result.images.append(out)
        result.infotexts.append(info)
        result.sources.append(source)
    return result


def process(image: Image.Image, req: ExtrasRequest, first: str, second: str, upscalers) -> Image.Image:
    source = image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB")
    if first == "None" and second == "None":
        return source
    out = resize(source, first, req, upscalers)
    if second != "None" and req.extras_upscaler_2_visibility > 0:
        out = Image.blend(out, resize(source, second, req, upscalers).convert(out.mode),
                          req.extras_upscaler_2_visibility)
    return out


def restore_faces(image: Image.Image, req: ExtrasRequest, faces) -> Image.Image:
    for name, kind in FACE_FIELDS:
        visibility = getattr(req, name)
        if visibility > 0:
            image, _ = faces.restore(image, kind, visibility, weight=req.codeformer_weight)
    return image


def resize(image: Image.Image, name: str, req: ExtrasRequest, upscalers) -> Image.Image:
    """A1111's Extras geometry: scale by a factor, or cover width x height and (crop) cut the centre to it."""
    field_name = "upscaling_resize" if req.resize_mode == 0 else "upscaling_resize_w/upscaling_resize_h"
    factor = req.upscaling_resize
    if req.resize_mode == 1:
        factor = max(req.upscaling_resize_w / image.width, req.upscaling_resize_h / image.height)
    scaled_w, scaled_h = image.width * factor, image.height * factor  # inf for a factor like 1e308
    if not max(scaled_w, scaled_h) < MAX_OUTPUT_SIDE + 1 or round(min(scaled_w, scaled_h)) < 1:
        raise RequestError(f"{field_name}: upscaled size {scaled_w:.0f}x{scaled_h:.0f} is out of range "
                           f"(1..{MAX_OUTPUT_SIDE} per side)")
    size = (round(scaled_w), round(scaled_h))
    if size == image.size:
        out = image.copy()
    elif image.mode == "RGBA" and name not in BUILTIN:  # models see RGB; the alpha is resized alongside
        out = upscalers.upscale(image.convert("RGB"), name, *size)
        out.putalpha(image.getchannel("A").resize(size, Image.LANCZOS))
    else:
        out = upscalers.upscale(image, name, *size)
    w, h = req.upscaling_resize_w, req.upscaling_resize_h
    if req.resize_mode == 1 and req.upscaling_crop and out.size != (w, h):
        left, top = (out.width - w) // 2, (out.height - h) // 2
        out = out.crop((left, top, left + w, top + h))
    return out


def _params(req: ExtrasRequest, first: str, second: str) -> dict:
    params = {}
    if first != "None":
        params.update({"Postprocess upscale by": f"{req.upscaling_resize:g}"} if req.resize_mode == 0 else
                      {"Postprocess upscale to": f"{req.upscaling_resize_w}x{req.upscaling_resize_h}"})
        params["Postprocess upscaler"] = first
        if second != "None" and req.extras_upscaler_2_visibility > 0:
            params["Postprocess upscaler 2"] = second
    if req.gfpgan_visibility > 0:
        params["GFPGAN visibility"] = f"{req.gfpgan_visibility:g}"
    if req.codeformer_visibility > 0:
        params["CodeFormer visibility"] = f"{req.codeformer_visibility:g}"
        params["CodeFormer weight"] = f"{req.codeformer_weight:g}"
    return params


def _with_post(infotext: str, post: str) -> str:
    """The input's infotext with the Postprocess keys at the end of its parameters line."""
    if not post:
        return infotext
    return f"{infotext.rstrip()}, {post}" if infotext.strip() else post
