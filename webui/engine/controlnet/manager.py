"""The engine's ControlNet part: the model folders and cache, the preprocessors, and a job's units planned (in the
caller's thread: every name and value checked before the queue) and prepared (in the worker: models loaded, maps
detected)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from webui.engine.controlnet.models import (
    ControlNetCache,
    ControlNetInfo,
    ControlNetRegistry,
)
from webui.engine.controlnet.preprocessors import (
    Module,
    Preprocessors,
    pixel_perfect_resolution,
)
from webui.engine.controlnet.sampling import ControlSet, PreparedUnit
from webui.engine.controlnet.units import (
    ControlNetUnit,
    UnitError,
    check_unit,
    infotext_value,
)
from webui.engine.requests import RequestError

API_VERSION = 2  # sd-webui-controlnet's /controlnet/version
CONTROLNET_API_VERSION = API_VERSION


@dataclass
class PlannedUnit:
    index: int  # among the active units: "ControlNet {index}"
    unit: ControlNetUnit
    model: ControlNetInfo
    module: Module


class ControlNets:
    def __init__(self, model_dirs: list[Path], annotator_dirs: list[Path], cache_size: int = 2,
                 unit_count: int = 3):
        self.registry = ControlNetRegistry(model_dirs)
        self.cache = ControlNetCache(cache_size)
        self.preprocessors = Preprocessors(list(annotator_dirs))
        self.unit_count = unit_count

    # ---- lists (the API's and the UI's) ----
    def model_titles(self, refresh: bool = False) -> list[str]:
        items = self.registry.refresh() if refresh else self.registry.list()
        return [i.title for i in items]

    def module_names(self, alias_names: bool = False) -> list[str]:
        return self.preprocessors.names(alias_names)

    # ---- planning (before the queue) ----
    def plan(self, req) -> list[PlannedUnit]:
        """The active units of a GenerationRequest (disabled, weight 0 or model "None": left out), checked."""
        units, is_img2img = req.controlnet_units, req.is_img2img
        if not isinstance(units, (list, tuple)):
            raise RequestError("controlnet_units must be a list of units")
        planned = []
        for i, unit in enumerate(units):
            if not isinstance(unit, ControlNetUnit):
                raise RequestError(f"ControlNet unit {i}: expected a ControlNetUnit (got {type(unit).__name__})")
            unit = replace(unit)  # the request's unit stays as given
            try:
                check_unit(unit, i)
            except UnitError as exc:
                raise RequestError(str(exc)) from None
            if not unit.active:
                continue
            model = self.registry.resolve(unit.model)
            module = self.preprocessors.check(unit.module)
            unit.module = module.name
            if unit.image is None and not is_img2img:
                raise RequestError(f"ControlNet unit {i}: no input image (the unit's image); only img2img can use "
                                   f"the init image instead")
            planned.append(PlannedUnit(len(planned), unit, model, module))
        if planned and req.mask is not None and req.inpaint_full_res:
            raise RequestError("ControlNet with inpaint area \"Only masked\" is not supported yet; use \"Whole "
                               "picture\" (inpaint_full_res: false)")
        return planned

    # ---- preparing (in the worker) ----
    def detect(self, unit: ControlNetUnit, image: Image.Image, width: int, height: int) -> tuple[Image.Image, dict]:
        """The unit's detected map, and the values it ran with (for the infotext)."""
        module = self.preprocessors.get(unit.module)
        res = unit.processor_res
        if unit.pixel_perfect:
            res = pixel_perfect_resolution(image, width, height, unit.resize_mode)
        res, a, b = module.defaults(res, unit.threshold_a, unit.threshold_b)
        detected = self.preprocessors.run(unit.module, image, res, a, b)
        return detected, {"processor_res": res, "threshold_a": a, "threshold_b": b}

    def prepare(self, planned: list[PlannedUnit], model, device, size: tuple[int, int],
                init_images: list[Image.Image] | None) -> tuple[ControlSet | None, dict]:
        """The job's ControlSet at ``size`` and its infotext parameters ("ControlNet 0": ...)."""
        if not planned:
            return None, {}
        prepared, params = [], {}
        for p in planned:
            net = self.cache.get(p.model, model, device.dtype, device.device)
            image = p.unit.image if p.unit.image is not None else init_images[0]
            detected, ran = self.detect(p.unit, image.convert("RGB"), *size)
            u = p.unit
            prepared.append(PreparedUnit(p.index, net, detected, u.weight, u.guidance_start, u.guidance_end,
                                         u.control_mode, u.resize_mode, u.hr_option))
            shown = ControlNetUnit(**{**vars(u), "model": p.model.title})
            params[f"ControlNet {p.index}"] = infotext_value(shown, ran["processor_res"], ran["threshold_a"],
                                                             ran["threshold_b"])
        return ControlSet(prepared, size), params
