"""The engine the ingress's API talks to (it satisfies EngineAPI, so the API's routers are the plain server's,
unchanged): listing, resolving and checking run on a local catalog Engine that never loads a model (the same
folders as the replicas: a bad request is refused here, before Ray); generation, extras and checkpoint loads are
forwarded to the generation deployment.

A job is a RemoteJob: its future is resolved by the replica's stream, and its JobState mirrors the replica's
progress reports, so /sdapi/v1/progress reads it as it reads a local job. Interrupt and skip are posted to the
JobControl actor under the job's id, where the replica running it picks them up."""
from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import uuid
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import replace

from webui.api.errors import ApiError
from webui.engine import JobState, ModelCache
from webui.engine.protocol import EngineAPI
from webui.settings import EDITABLE, RESTART_SETTINGS

log = logging.getLogger(__name__)

# settings every generation request carries to its replica (POST /options changes them on the ingress); the
# checkpoint cache is the replica's own (--checkpoint-cache, with Ray Serve's multiplexing)
SYNCED_SETTINGS = tuple(k for k in EDITABLE if k not in RESTART_SETTINGS and k != "checkpoint_cache_size")
# what the ingress answers from its catalog engine, as the plain server does
CATALOG = ("styles", "wildcards", "device", "plan", "list_checkpoints", "resolve_checkpoint", "list_loras",
           "list_embeddings", "list_vaes", "check_vae", "token_count", "list_upscalers", "upscaler_items",
           "face_restorers", "network_cards", "network_card", "previews_writable", "save_network_preview",
           "list_scripts", "script_info", "script_args", "request_defaults", "hooks", "controlnet_models",
           "controlnet_modules", "controlnet_module_detail")
RETRY_AFTER = {"Retry-After": "5"}


class RemoteJob:
    """A job running (or waiting) in some replica, as the API sees a local Job."""

    _numbers = itertools.count(1)

    def __init__(self, kind: str, checkpoint: str):
        self.id = uuid.uuid4().hex
        self.state = JobState(next(self._numbers), kind)
        self.future: Future = Future()
        self.plan = None
        self.checkpoint = checkpoint
        self.replica: str | None = None  # the replica's actor name once it has the job
        self.response = None  # the Ray Serve stream, for cancel()

    def result(self, timeout: float | None = None):
        return self.future.result(timeout)

    @property
    def running(self) -> bool:
        return self.state.started is not None and not self.state.finished and not self.future.done()

    def update(self, snapshot: dict) -> None:
        for name, value in snapshot.items():
            setattr(self.state, name, value)


class RemoteEngine:
    def __init__(self, catalog, generator, control, models_per_replica: int = 1, max_jobs: int = 256):
        """`catalog`: a local Engine (no model is loaded in it); `generator`: the generation deployment's handle;
        `control`: the JobControl actor."""
        self.catalog = catalog
        self.generator = generator
        self.control = control
        self.models_per_replica = models_per_replica
        self._current: str | None = None  # the checkpoint requests get unless they name one (POST /options)
        self._jobs: dict[str, RemoteJob] = {}
        self._replicas: dict[str, dict] = {}  # replica name -> its latest stats
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_jobs, thread_name_prefix="ray-job")  # one per job in flight

    def __getattr__(self, name: str):
        if name in CATALOG:
            return getattr(self.catalog, name)
        if not name.startswith("_") and hasattr(EngineAPI, name):
            return _not_on_ray(name)  # model work this deployment does not forward yet: a clear 501, never run here
        raise AttributeError(name)

    @property
    def settings(self):
        return self.catalog.settings

    # ---- generation ----------------------------------------------------------------------------------------
    def submit(self, request) -> RemoteJob:
        """Checked here (a bad request never reaches Ray), then sent to a replica holding its checkpoint."""
        if not request.script_name:  # a script's arguments are checked by the replica's engine
            self.catalog.plan(request)
        title = request.checkpoint or self.default_checkpoint().title
        request = replace(request, checkpoint=title)
        job = RemoteJob("img2img" if request.is_img2img else "txt2img", title)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._drive, job, request)
        return job

    def generate(self, request, timeout: float | None = None):
        return self.submit(request).result(timeout)

    def _payload(self, job: RemoteJob, request) -> dict:
        settings = {k: getattr(self.settings, k) for k in SYNCED_SETTINGS}
        return {"job_id": job.id, "request": request, "settings": settings, "vae": self.catalog.vae_choice}

    def _drive(self, job: RemoteJob, request) -> None:
        """In a pool thread: follow the replica's stream until the job's result (or error). A request whose replica
        died before taking the job (it ran nowhere) is sent once more, to a live replica."""
        try:
            for attempt in (1, 2):
                try:
                    return self._follow(job, request)
                except Exception as exc:  # noqa: BLE001 - every failure settles the job: the client never hangs
                    if attempt == 2 or job.replica is not None or not replica_lost(exc) or job.future.cancelled():
                        self._settle(job, error=failure(exc, job))
                        return None
                    log.warning("job %s: its replica was lost before it took the job; sending it again", job.id)
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)

    def _follow(self, job: RemoteJob, request) -> None:
        handle = self.generator.options(stream=True, multiplexed_model_id=job.checkpoint)
        job.response = handle.run.remote(self._payload(job, request))
        for message in job.response:
            self._receive(job, message)
            if job.future.done():
                return
        self._settle(job, error=ApiError(502, "the generation replica ended the job without a result"))

    def _receive(self, job: RemoteJob, message: dict) -> None:
        event = message["event"]
        if event == "queued":
            job.replica = message["replica"]
        elif event == "progress":
            job.update(message["state"])
        elif event == "done":
            self._note_replica(message["replica"])
            self._settle(job, result=message["result"])
        elif event == "error":
            self._settle(job, error=message["error"])

    @staticmethod
    def _settle(job: RemoteJob, result=None, error: BaseException | None = None) -> None:
        if job.future.done():
            return
        if job.state.finished is None:
            import time

            job.state.finished = time.time()
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
            job.future.set_exception(error) if error is not None else job.future.set_result(result)

    def _note_replica(self, stats: dict) -> None:
        with self._lock:
            self._replicas[stats["name"]] = stats

    # ---- progress and control --------------------------------------------------------------------------------
    def _in_flight(self) -> list[RemoteJob]:
        with self._lock:
            return list(self._jobs.values())

    def current_job(self) -> RemoteJob | None:
        """The running job that started first (what /progress reports and /interrupt stops)."""
        running = [j for j in self._in_flight() if j.running]
        return min(running, key=lambda j: j.state.started) if running else None

    def queue_length(self) -> int:
        return sum(1 for j in self._in_flight() if j.state.started is None)

    def queue_position(self, job: RemoteJob) -> int:
        if job.future.done():
            return -1
        if job.state.started is not None:
            return 0
        waiting = sorted((j for j in self._in_flight() if j.state.started is None), key=lambda j: j.state.id)
        return waiting.index(job) + 1 if job in waiting else -1

    def interrupt(self) -> bool:
        return self._post("interrupt")

    def skip(self) -> bool:
        return self._post("skip")

    def _post(self, command: str) -> bool:
        job = self.current_job()
        if job is None:
            return False
        getattr(job.state, command)()  # seen by /progress at once
        self.control.post.remote(job.id, command)  # the replica running it picks it up within a tick
        return True

    def cancel(self, job: RemoteJob) -> bool:
        """Drop a job that has not started (its client went away)."""
        if job.state.started is not None or not job.future.cancel():
            return False
        if job.response is not None:
            job.response.cancel()
        return True

    # ---- checkpoints ------------------------------------------------------------------------------------------
    def default_checkpoint(self):
        return self.catalog.resolve_checkpoint(self._current) if self._current else self.catalog.default_checkpoint()

    def load_checkpoint(self, query: str | None = None) -> dict:
        """The checkpoint requests get from now on (A1111's sd_model_checkpoint), loaded on a replica first: a file
        that does not load is refused and the previous choice stays."""
        info = self.catalog.resolve_checkpoint(query) if query else self.catalog.default_checkpoint()
        try:
            answer = self.generator.options(multiplexed_model_id=info.title).warm.remote().result()
        except Exception as exc:  # noqa: BLE001
            raise failure(exc, None) from None
        if "error" in answer:
            raise answer["error"]
        self._note_replica(answer)
        self._current = info.title
        return answer

    def unload_checkpoint(self) -> None:
        """Replicas keep their checkpoints (Ray Serve's multiplexing unloads the least recently used)."""

    def active_model(self):
        """None: no model is loaded here. The checkpoint requests get is default_checkpoint()."""
        return

    def model_cache(self) -> ModelCache:
        replicas = self.replicas()
        titles = sorted({t for r in replicas for t in r["models"]})
        return ModelCache(self.models_per_replica, titles, sum(sum(r["loads"].values()) for r in replicas))

    def replicas(self) -> list[dict]:
        """The latest stats each replica sent (name, loads by checkpoint, jobs, models held), with the jobs it is
        running now."""
        running: dict[str, list[str]] = {}
        for job in self._in_flight():
            if job.replica:
                running.setdefault(job.replica, []).append(job.id)
        with self._lock:
            known = {name: dict(stats) for name, stats in self._replicas.items()}
        for name in running:
            known.setdefault(name, {"name": name, "loads": {}, "served": {}, "jobs": 0, "models": []})
        return [{**stats, "running": running.get(name, [])} for name, stats in sorted(known.items())]

    # ---- VAE, settings, extras --------------------------------------------------------------------------------
    @property
    def vae_choice(self) -> str:
        return self.catalog.vae_choice

    def select_vae(self, name: str | None) -> str:
        """Checked and kept here; every request carries it to its replica."""
        return self.catalog.select_vae(name)

    def update_settings(self, changes: dict) -> list[str]:
        return self.catalog.update_settings(changes)

    def extras(self, request):
        try:
            answer = self.generator.extras.remote(request).result()
        except Exception as exc:  # noqa: BLE001
            raise failure(exc, None) from None
        if "error" in answer:
            raise answer["error"]
        return answer["result"]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.catalog.close()


def _not_on_ray(name: str):
    def refuse(*args, **kwargs):
        raise ApiError(501, f"{name} is not available on Ray Serve yet: use the plain server (python app.py --api)")

    return refuse


def replica_lost(exc: BaseException) -> bool:
    from ray import exceptions as ray_errors

    return isinstance(exc, (ray_errors.RayActorError, ray_errors.ActorUnavailableError))


def failure(exc: BaseException, job: RemoteJob | None) -> BaseException:
    """A Ray failure as the API error to answer: a replica that died or cannot be reached is a 503 that says so."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    where = f"the generation replica running this job ({job.replica})" if job and job.replica else \
        "the generation replica"
    if replica_lost(exc):
        return ApiError(503, f"{where} stopped before the job finished ({type(exc).__name__}); Ray Serve starts a "
                             "new replica: send the request again", RETRY_AFTER)
    if isinstance(exc, serve_errors.RequestCancelledError):
        return ApiError(499, "the request was cancelled before it finished")
    if isinstance(exc, (serve_errors.BackPressureError, serve_errors.DeploymentUnavailableError)):
        return ApiError(503, f"no generation replica can take the request now ({exc}); try again later", RETRY_AFTER)
    if isinstance(exc, ray_errors.RayError):
        return ApiError(503, f"{where} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", RETRY_AFTER)
    return exc
