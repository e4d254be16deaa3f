"""The engine's public API: what the UI, the REST API, the CLI and the tests may import from here. Everything else
under webui/engine is internal. Names load on first use, so importing the package stays cheap.

    from webui.engine import Engine, GenerationRequest
    engine = Engine(settings)                      # state lives in this object (and what it is given)
    result = engine.generate(GenerationRequest(prompt="a red circle", steps=20))
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": "webui.engine.facade", "ModelCache": "webui.engine.facade",
    "EngineAPI": "webui.engine.protocol",
    "GenerationRequest": "webui.engine.requests", "GenerationResult": "webui.engine.requests",
    "RESIZE_MODES": "webui.engine.requests",
    "ExtrasRequest": "webui.engine.extras", "ExtrasResult": "webui.engine.extras",
    "JobPlan": "webui.engine.plan", "Job": "webui.engine.jobs", "JobState": "webui.engine.jobs",
    "Hooks": "webui.engine.hooks", "ImageContext": "webui.engine.hooks", "HOOK_KINDS": "webui.engine.hooks",
    "MASKED_CONTENT": "webui.engine.inpaint", "LATENT_MODES": "webui.engine.hires", "inspect_checkpoint": "webui.engine.checkpoints.loader",
    "merge_prompts": "webui.engine.prompts.styles",
    "NetworkCard": "webui.engine.networks.catalog", "PreviewRefused": "webui.engine.networks.catalog",
    "NETWORK_SORTS": "webui.engine.networks.catalog",
    "TrainingRequest": "webui.engine.training.request", "TrainingResult": "webui.engine.training.request",
    "TrainingError": "webui.engine.training.request",
    "Script": "webui.engine.scripts.base", "ScriptArg": "webui.engine.scripts.base",
    "ScriptNotFound": "webui.engine.scripts.base",
    "InspectRequest": "webui.engine.inspect.run", "InspectResult": "webui.engine.inspect.run",
    "TokenView": "webui.engine.inspect.tokens", "INSPECT_LAYER_GROUPS": "webui.engine.inspect.attention",
    "INSPECT_DECODES": "webui.engine.inspect.run",
    # errors: every one is an EngineError; RequestError means bad input (a 4xx), NotFoundError names a missing thing
    "EngineError": "webui.engine.errors", "RequestError": "webui.engine.requests",
    "NotFoundError": "webui.engine.requests", "SamplerError": "webui.engine.samplers",
    "CheckpointLoadError": "webui.engine.checkpoints.loader", "QueueFullError": "webui.engine.jobs",
    "NonFiniteOutputError": "webui.engine.generation",
    # ControlNet: sd-webui-controlnet's unit, its API dicts and infotext
    "ControlNetUnit": "webui.engine.controlnet.units", "controlnet_unit_from_dict": "webui.engine.controlnet.units",
    "controlnet_units_from_params": "webui.engine.controlnet.units",
    "CONTROL_MODES": "webui.engine.controlnet.units", "CONTROLNET_RESIZE_MODES": "webui.engine.controlnet.units",
    "CONTROLNET_API_VERSION": "webui.engine.controlnet.manager", "UnitError": "webui.engine.controlnet.units",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'webui.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
