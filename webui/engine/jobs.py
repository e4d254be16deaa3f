"""One bounded queue and one worker for everything that touches the model. Progress, interrupt and skip live in
the running job's state, which the UI and the API read."""
from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from webui.engine.errors import EngineError


class QueueFullError(EngineError, RuntimeError):
    """The queue holds as many jobs as it may (Settings.queue_size): try again later."""


@dataclass
class JobState:
    id: int
    kind: str
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    job_no: int = 0  # batch being sampled (0-based), A1111 state.job_no
    job_count: int = 1
    sampling_step: int = 0
    sampling_steps: int = 0
    interrupted: bool = False
    skipped: bool = False
    preview: Any = None  # PIL image of the latest preview
    preview_step: int = -1
    textinfo: str | None = None  # a line about the job's state (training: the loss), A1111's /progress textinfo
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def interrupt(self) -> None:
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def set_step(self, step: int, total: int) -> None:
        self.sampling_step, self.sampling_steps = step, total

    @property
    def progress(self) -> float:
        """0..1 over the whole job (all batches)."""
        if self.finished:
            return 1.0
        if not self.job_count or not self.sampling_steps:
            return 0.0
        per = 1.0 / self.job_count
        return min(1.0, self.job_no * per + per * self.sampling_step / self.sampling_steps)

    @property
    def eta(self) -> float | None:
        if not self.started or self.progress <= 0:
            return None
        elapsed = time.time() - self.started
        return elapsed / self.progress - elapsed


class Job:
    def __init__(self, state: JobState, fn: Callable[[JobState], Any]):
        self.state = state
        self.fn = fn
        self.future: Future = Future()
        self.plan: Any = None  # a generation job's JobPlan (what will run), for callers and tests

    def result(self, timeout: float | None = None):
        return self.future.result(timeout)


class JobQueue:
    def __init__(self, maxsize: int = 32):
        self.maxsize = maxsize  # jobs that may wait behind the running one
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self.current: Job | None = None
        self.last: Job | None = None
        self._worker = threading.Thread(target=self._run, name="latent-studio-worker", daemon=True)
        self._worker.start()

    def submit(self, kind: str, fn: Callable[[JobState], Any]) -> Job:
        job = Job(JobState(next(self._ids), kind), fn)
        with self._lock:
            # counted under the lock, not by a bounded queue: a job the idle worker has not taken yet is about to
            # run, so a burst onto an idle worker gets maxsize waiting jobs besides the one that starts
            if len(self._pending) >= self.maxsize + (self.current is None):
                raise QueueFullError(f"The queue is full ({self.maxsize} jobs waiting); try again later")
            self._pending.append(job)
            self._q.put_nowait(job)
        return job

    def run(self, kind: str, fn: Callable[[JobState], Any], timeout: float | None = None):
        """Submit and wait for the result (re-raises the job's exception)."""
        return self.submit(kind, fn).result(timeout)

    def position(self, job: Job) -> int:
        """0 = running, 1 = next, ...; -1 when done."""
        with self._lock:
            if job is self.current:
                return 0
            try:
                return self._pending.index(job) + 1
            except ValueError:
                return -1

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def interrupt(self) -> bool:
        job = self.current
        if job is not None:
            job.state.interrupt()
            return True
        return False

    def skip(self) -> bool:
        job = self.current
        if job is not None:
            job.state.skip()
            return True
        return False

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started (its caller has gone): True when it will not run."""
        with self._lock:
            if not job.future.cancel():
                return False
            if job in self._pending:
                self._pending.remove(job)
            return True

    def shutdown(self) -> None:
        self._q.put(None)

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            with self._lock:
                if job in self._pending:  # not when it was cancelled while waiting
                    self._pending.remove(job)
                self.current = job
            job.state.started = time.time()
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(job.fn(job.state))
                except BaseException as exc:  # the worker must survive anything a job does
                    job.future.set_exception(exc)
            job.state.finished = time.time()
            with self._lock:
                self.last, self.current = job, None
