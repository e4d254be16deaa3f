"""sd-webui-controlnet's API: its routes, and its units in ``alwayson_scripts.controlnet.args``.

    GET  /controlnet/version        {"version": 2}
    GET  /controlnet/model_list     {"model_list": ["name [hash]", ...]}   (?update=true rescans the folders)
    GET  /controlnet/module_list    {"module_list": [...], "module_detail": {...}}   (?alias_names=true)
    GET  /controlnet/settings       {"control_net_unit_count": 3}
    POST /controlnet/detect         {"images": [base64 PNG, ...], "info": "Success"}
"""
from __future__ import annotations

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from webui.api.errors import ApiError, ApiRoute
from webui.api.images import decode_image, encode_png, flatten
from webui.engine import (
    CONTROLNET_API_VERSION,
    RequestError,
    UnitError,
    controlnet_unit_from_dict,
)

SCRIPT_KEY = "controlnet"


def _decode(value, field: str):
    if not isinstance(value, str):
        raise ApiError(422, f"{field}: expected a base64 image (got {type(value).__name__})")
    return flatten(decode_image(value, field))


def units_from_body(values: dict) -> list:
    """The units of ``alwayson_scripts.controlnet`` (any capitalisation of the key), as ControlNetUnits; a bad
    field is a 422 naming the unit and the field."""
    scripts = values.get("alwayson_scripts") or {}
    entry = next((v for k, v in scripts.items() if isinstance(k, str) and k.lower() == SCRIPT_KEY), None)
    if entry is None:
        return []
    args = entry.get("args") if isinstance(entry, dict) else None
    if not isinstance(args, list):
        raise ApiError(422, "alwayson_scripts.controlnet.args must be a list of ControlNet unit objects")
    try:
        return [controlnet_unit_from_dict(u, i, _decode) for i, u in enumerate(args)]
    except UnitError as exc:
        raise ApiError(422, f"alwayson_scripts.controlnet: {exc}") from None


class ControlNetApi:
    def __init__(self, engine, dependencies=()):
        self.engine = engine
        self.router = APIRouter(prefix="/controlnet", tags=["controlnet"], route_class=ApiRoute,
                                dependencies=list(dependencies))
        r = self.router.add_api_route
        r("/version", self.version, methods=["GET"])
        r("/model_list", self.model_list, methods=["GET"])
        r("/module_list", self.module_list, methods=["GET"])
        r("/settings", self.settings, methods=["GET"])
        r("/detect", self.detect, methods=["POST"])

    async def version(self) -> dict:
        return {"version": CONTROLNET_API_VERSION}

    async def model_list(self, update: bool = True) -> dict:
        return {"model_list": await run_in_threadpool(self.engine.controlnet_models, update)}

    async def module_list(self, alias_names: bool = False) -> dict:
        return {"module_list": self.engine.controlnet_modules(alias_names),
                "module_detail": self.engine.controlnet_module_detail(alias_names)}

    async def settings(self) -> dict:
        return {"control_net_unit_count": self.engine.settings.controlnet_unit_count}

    async def detect(self, controlnet_module: str = Body("none"),
                     controlnet_input_images: list[str] = Body([]),  # noqa: B008
                     controlnet_processor_res: int = Body(-1), controlnet_threshold_a: float = Body(-1),
                     controlnet_threshold_b: float = Body(-1), controlnet_masks: list[str] = Body([]),  # noqa: B008
                     low_vram: bool = Body(False)) -> dict:
        if not controlnet_input_images:
            raise ApiError(422, "No image selected")
        images = [_decode(s, f"controlnet_input_images[{i}]") for i, s in enumerate(controlnet_input_images)]
        try:
            maps = await run_in_threadpool(self.engine.controlnet_detect, controlnet_module, images,
                                           controlnet_processor_res, controlnet_threshold_a, controlnet_threshold_b)
        except RequestError as exc:
            raise ApiError(422, str(exc)) from None  # the extension: 422 for an unknown module
        return {"images": [encode_png(m, None) for m in maps], "info": "Success"}
