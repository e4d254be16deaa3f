"""The generation deployment: each replica owns one Engine (one GPU, or CPU) built from the same flags as the
ingress, so it reads models from the same (shared) folders and writes outputs to the same (shared) outputs folder.

Requests are multiplexed by checkpoint title (Ray Serve's model multiplexing): Ray routes a request to a replica
that already holds its checkpoint, and a replica loads at most `--checkpoint-cache` checkpoints (least recently
used first out). A job streams its progress back to the ingress while it runs and waits on the JobControl actor
for interrupt and skip; its result (or its error, as a value) is the stream's last message."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between progress reports of a running job
STATE_FIELDS = ("kind", "created", "started", "finished", "job_no", "job_count", "sampling_step", "sampling_steps",
                "interrupted", "skipped")


def state_snapshot(state, last_preview_step: int) -> dict:
    """A JobState as plain values; the preview image only when it changed since `last_preview_step`."""
    out = {name: getattr(state, name) for name in STATE_FIELDS}
    if state.preview is not None and state.preview_step != last_preview_step:
        out["preview"], out["preview_step"] = state.preview, state.preview_step
    return out


class Loaded:
    """What the multiplexing cache holds for one checkpoint: its title (the Engine keeps the weights)."""

    def __init__(self, title: str):
        self.title = title


class Generator:
    def __init__(self, argv: list[str], app_name: str):
        import torch
        from ray import serve

        from webui.engine import Engine
        from webui.extensions import load_extensions
        from webui.flags import build_parser, settings_from_args
        from webui.serving.job_control import job_control
        from webui.serving.ray_config import RayServeConfig

        args = build_parser().parse_args(argv)
        config = RayServeConfig.from_args(args)
        torch.set_num_threads(config.threads_per_replica)  # this replica's process only
        settings, _ = settings_from_args(args)
        settings = settings.with_overrides(checkpoint_cache_size=config.models_per_replica)
        self.engine = Engine(settings, hooks=load_extensions(settings).hooks)
        self.control = job_control(app_name)
        self.name = _replica_name()
        self.loads: Counter[str] = Counter()  # checkpoint title -> times this replica loaded it
        self.served: Counter[str] = Counter()  # checkpoint title -> jobs this replica took for it
        self.jobs = 0
        async def load(title: str) -> Loaded:  # a function, not a method: the cache size comes from the flags
            return await self._load(title)

        self._model = serve.multiplexed(max_num_models_per_replica=config.models_per_replica)(load)
        log.info("replica %s ready on %s", self.name, self.engine.device.describe())

    async def _load(self, title: str) -> Loaded:
        """Called by Ray Serve's multiplexing when this replica does not hold `title` yet."""
        await asyncio.to_thread(self.engine.load_checkpoint, title)
        self.loads[title] += 1
        return Loaded(title)

    async def run(self, payload: dict):
        """Stream of messages for one generation job: {"event": "queued" | "progress" | "done" | "error", ...}."""
        from ray import serve

        title = serve.get_multiplexed_model_id()
        try:
            await self._model(title)
            await asyncio.to_thread(self._apply, payload)  # a VAE switch waits in the engine's queue
            job = await asyncio.to_thread(self.engine.submit, payload["request"])
        except Exception as exc:  # noqa: BLE001 - sent back as a value: the ingress raises it as it is
            yield {"event": "error", "error": exc, "replica": self.name}
            return
        self.jobs += 1
        self.served[title] += 1
        yield {"event": "queued", "replica": self.name}
        async for message in self._follow(job, payload["job_id"]):
            yield message

    async def _follow(self, job, job_id: str):
        future, preview_step, sent = asyncio.wrap_future(job.future), -1, None
        try:
            while not future.done():
                commands = asyncio.ensure_future(self._commands(job, job_id))
                await asyncio.wait({future, commands}, return_when=asyncio.FIRST_COMPLETED)
                snapshot = state_snapshot(job.state, preview_step)
                preview_step = snapshot.get("preview_step", preview_step)
                if snapshot != sent:
                    sent = snapshot
                    yield {"event": "progress", "state": snapshot}
            try:
                result = job.result()
            except Exception as exc:  # noqa: BLE001 - as above
                yield {"event": "error", "error": exc, "replica": self.name}
                return
            yield {"event": "done", "result": result, "replica": self.stats()}
        finally:
            if not job.future.done():  # the caller went away (cancelled, or the ingress died)
                self.engine.cancel(job) or job.state.interrupt()
            await self.control.forget.remote(job_id)

    async def _commands(self, job, job_id: str) -> None:
        """Wait up to TICK for an interrupt/skip posted for this job, and apply it (only once the job runs)."""
        if job.state.started is None:
            await asyncio.sleep(TICK)
            return
        for command in await self.control.wait.remote(job_id, TICK):
            getattr(job.state, command)()  # JobState.interrupt / .skip: this job's, wherever it is

    def _apply(self, payload: dict) -> None:
        """The ingress's settings and VAE choice (POST /options changes them there), before the job is planned."""
        changes = {k: v for k, v in payload.get("settings", {}).items() if getattr(self.engine.settings, k) != v}
        if changes:
            self.engine.update_settings(changes)
        vae = payload.get("vae")
        if vae is not None and vae != self.engine.vae_choice:
            self.engine.select_vae(vae)

    async def warm(self) -> dict:
        """Load the request's checkpoint (POST /options sd_model_checkpoint sends one of these)."""
        from ray import serve

        await self._model(serve.get_multiplexed_model_id())
        return self.stats()

    async def extras(self, request) -> dict:
        try:
            return {"result": await asyncio.to_thread(self.engine.extras, request)}
        except Exception as exc:  # noqa: BLE001 - as in run()
            return {"error": exc}

    def stats(self) -> dict:
        cache = self.engine.model_cache()
        return {"name": self.name, "pid": os.getpid(), "loads": dict(self.loads), "jobs": self.jobs,
                "served": dict(self.served),
                "models": list(cache.titles), "device": self.engine.device.describe(), "time": time.time()}

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


def _replica_name() -> str:
    """This replica's actor name (SERVE_REPLICA::app#Generator#id): what `ray.get_actor` finds it by."""
    import ray

    return ray.get_runtime_context().get_actor_name() or f"pid-{os.getpid()}"
