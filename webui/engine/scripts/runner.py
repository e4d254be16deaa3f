"""A request with a script_name: checked when submitted (the request itself, then the script's arguments), then one
queue job in which the script runs its sub-generations. The checkpoint active before the job is active again
after it (an X/Y/Z plot over checkpoints switches models, as A1111's restores them)."""
from __future__ import annotations

import time
from dataclasses import replace

from webui.engine.requests import GenerationRequest
from webui.engine.scripts.base import find_script, scripts_for
from webui.engine.scripts.context import ScriptContext


def mode_of(request: GenerationRequest) -> str:
    return "img2img" if request.is_img2img else "txt2img"


def submit_script(engine, request: GenerationRequest):
    """The queued Job (its `plan`: the request's own plan, without the script)."""
    mode = mode_of(request)
    script = find_script(engine.hooks, request.script_name, mode)
    base = replace(request, script_name=None, script_args=[])
    plan = engine.planner.plan(base)  # the request's own fields: bad input fails here, before the queue
    ctx = ScriptContext(engine, mode)
    check = getattr(script, "check", None)
    prepared = check(ctx, base, list(request.script_args or [])) if check else list(request.script_args or [])

    def run(state):
        t0 = time.perf_counter()
        before = engine.models.active
        try:
            result = script.run(ctx.bind(state), base, prepared)
        finally:
            if before is not None and engine.models.active is not before:
                engine.ensure_model(str(before.path))
        result.interrupted = result.interrupted or state.interrupted
        result.timings.setdefault("total", time.perf_counter() - t0)
        return result

    job = engine.queue.submit(mode, run)
    job.plan = plan
    return job


def script_titles(engine, mode: str) -> list[str]:
    """A1111's /sdapi/v1/scripts list for a tab: the titles in lower case."""
    return [s.title.lower() for s in scripts_for(engine.hooks, mode)]


def script_info(engine) -> list[dict]:
    """A1111's /sdapi/v1/script-info: every script of each tab with its arguments."""
    out = []
    for mode in ("txt2img", "img2img"):
        ctx = ScriptContext(engine, mode)
        for script in scripts_for(engine.hooks, mode):
            out.append({"name": script.title.lower(), "is_alwayson": False, "is_img2img": mode == "img2img",
                        "args": [a.as_api() for a in script.args(ctx, mode)]})
    return out


def script_args(engine, name: str, mode: str) -> list:
    script = find_script(engine.hooks, name, mode)
    return script.args(ScriptContext(engine, mode), mode)
