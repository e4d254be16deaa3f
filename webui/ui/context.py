"""What every tab shares: the engine, the prompt stores, the model-loading status and the jobs this UI submitted.

Nothing here imports gradio, so the logic can be tested without a browser.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from webui.engine import Engine, Job

log = logging.getLogger(__name__)


@dataclass
class LoadStatus:
    busy: bool = False
    target: str | None = None  # title (or "default") being loaded
    error: str | None = None


@dataclass
class UiContext:
    engine: Engine
    notice: str | None = None  # e.g. "settings file was corrupt, moved aside"
    exposed: bool = False  # --listen / --share: reachable from other machines (no installing from URLs)
    local: bool = False  # served on this machine only (not --listen/--share): "Open folder" may open a file manager
    extensions: Any = None  # the ExtensionManager (its tabs and the Extensions tab); None: no extensions
    status: LoadStatus = field(default_factory=LoadStatus)
    jobs: dict[int, Job] = field(default_factory=dict)  # job id -> job, while it runs (for Interrupt / Skip)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.styles = self.engine.styles  # the libraries the Prompts and Wildcards tabs edit
        self.wildcards = self.engine.wildcards
        from webui.ui.tokens import TokenCounter

        self.tokens = TokenCounter(self.engine)

    # ---- checkpoint loading (never blocks a page) ----------------------------------------------------
    def load_checkpoint(self, query: str | None) -> str | None:
        """Load through the engine's queue. Returns the error message, if any (the old model stays); it is also kept
        in `status.error`, which every page shows while no model is loaded at all."""
        with self._lock:
            self.status = LoadStatus(busy=True, target=query or "default")
        try:
            self.engine.load_checkpoint(query)
            error = None
        except Exception as exc:  # CheckpointLoadError, OSError, anything a broken file does
            log.warning("checkpoint load failed: %s", exc)
            error = str(exc)
        with self._lock:
            self.status = LoadStatus(busy=False, target=query or "default", error=error)
        return error

    def begin_load(self, query: str | None) -> None:
        with self._lock:
            self.status = LoadStatus(busy=True, target=query or "default")

    def load_in_background(self, query: str | None = None) -> threading.Thread:
        with self._lock:
            self.status = LoadStatus(busy=True, target=query or "default")
        t = threading.Thread(target=self.load_checkpoint, args=(query,), name="latent-studio-load", daemon=True)
        t.start()
        return t

    # ---- jobs ---------------------------------------------------------------------------------------
    def track(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.state.id] = job
            for k in [k for k, j in self.jobs.items() if j.future.done()]:
                if k != job.state.id:
                    del self.jobs[k]

    def forget(self, job: Job) -> None:
        with self._lock:
            self.jobs.pop(job.state.id, None)

    def interrupt(self, job_id: int | None) -> str:
        """Interrupt this page's job (a waiting one is cancelled); without one, the running job."""
        job = self.jobs.get(job_id) if job_id else None
        if job is None:
            return "Interrupting the running job" if self.engine.interrupt() else "Nothing is running"
        if job.future.cancel():
            return "Cancelled the waiting job"
        job.state.interrupt()
        return "Interrupting: finished images are kept"

    def skip(self, job_id: int | None) -> str:
        job = self.jobs.get(job_id) if job_id else None
        if job is None:
            return "Skipping the current batch" if self.engine.skip() else "Nothing is running"
        if job.future.running():
            job.state.skip()
            return "Skipping the current batch"
        return "The job has not started yet"
