"""Interrupt and skip for a job that runs in some replica: the ingress posts the command here under the job's id,
and the replica running that job waits here between progress reports, so the command reaches it at once.

A Ray Serve handle cannot address one chosen replica, so the two meet at this small actor (one per application,
named, found by either side)."""
from __future__ import annotations

import asyncio

COMMANDS = ("interrupt", "skip")


class JobControl:
    """Pending commands by job id. Async actor: many replicas wait on it at once."""

    def __init__(self):
        self._pending: dict[str, list[str]] = {}
        self._events: dict[str, asyncio.Event] = {}

    async def post(self, job_id: str, command: str) -> None:
        if command not in COMMANDS:
            raise ValueError(f"unknown job command {command!r}")
        self._pending.setdefault(job_id, []).append(command)
        self._event(job_id).set()

    async def wait(self, job_id: str, timeout: float) -> list[str]:
        """The commands posted for `job_id` (waits up to `timeout` seconds for one; [] when none came)."""
        event = self._event(job_id)
        if not self._pending.get(job_id):
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
        event.clear()
        return self._pending.pop(job_id, [])

    async def forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)
        self._events.pop(job_id, None)

    def _event(self, job_id: str) -> asyncio.Event:
        return self._events.setdefault(job_id, asyncio.Event())


def job_control(app_name: str):
    """The application's JobControl actor (started by whichever side asks first; detached, so it outlives the
    process that started it)."""
    import ray

    actor = ray.remote(num_cpus=0, max_concurrency=1000)(JobControl)
    return actor.options(name=f"{app_name}-job-control", namespace="latent-studio", get_if_exists=True,
                         lifetime="detached").remote()
