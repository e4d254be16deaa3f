"""The job queue's capacity: `maxsize` jobs may wait behind the running one, counted the same however fast the
worker takes its next job."""
from __future__ import annotations

import threading

import pytest

from webui.engine.jobs import JobQueue, QueueFullError


def test_a_burst_onto_an_idle_worker_gets_the_running_job_and_maxsize_waiting():
    """Sent at once, before the worker has taken any (here it never will): the first is about to run, so queue_size
    more may wait. A bounded queue.Queue refused the last of these, as the browser queue test saw."""
    q = JobQueue(maxsize=2)
    q.shutdown()
    q._worker.join(5)
    jobs = [q.submit("burst", lambda state: None) for _ in range(3)]
    assert len(jobs) == 3 and q.waiting == 3
    with pytest.raises(QueueFullError, match=r"2 jobs waiting"):
        q.submit("burst", lambda state: None)


def test_while_a_job_runs_maxsize_may_wait_and_a_cancelled_one_frees_its_place():
    q = JobQueue(maxsize=2)
    release, started = threading.Event(), threading.Event()
    running = q.submit("block", lambda state: (started.set(), release.wait(30)))
    try:
        assert started.wait(10) and q.current is running
        waiting = [q.submit("wait", lambda state: "done") for _ in range(2)]
        with pytest.raises(QueueFullError):
            q.submit("wait", lambda state: None)
        assert q.cancel(waiting[0]) and q.waiting == 1
        waiting.append(q.submit("wait", lambda state: "done"))
    finally:
        release.set()
    assert [j.result(10) for j in waiting[1:]] == ["done", "done"]
    assert waiting[0].future.cancelled()
