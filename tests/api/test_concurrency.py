"""The API shares the engine's one queue: concurrent requests are all served, each with its own images; a full
queue is a clear 503; /progress answers while the worker is busy."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from tests.api.helpers import decode, info_of, infotext_of, px


def body(i: int) -> dict:
    return {"prompt": f"request number {i}", "seed": 5000 + 37 * i, "steps": 2, "width": 64, "height": 64,
            "sampler_name": "Euler"}


def test_twenty_concurrent_txt2img_requests_are_not_mixed(server):
    n = 20
    refs = {}
    for i in (0, 7, 19):  # single requests, one at a time: the pictures each seed must give
        r = requests.post(f"{server.api}/txt2img", json=body(i), timeout=120)
        refs[i] = px(decode(r.json()["images"][0]))
    start = threading.Barrier(n)

    def call(i):
        start.wait()
        return i, requests.post(f"{server.api}/txt2img", json=body(i), timeout=300)

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(call, range(n)))
    images = {}
    for i, r in results:
        assert r.status_code == 200, r.text
        data = r.json()
        info = info_of(data)
        assert info["seed"] == body(i)["seed"] and info["all_seeds"] == [body(i)["seed"]]
        assert info["prompt"] == body(i)["prompt"] and data["parameters"]["prompt"] == body(i)["prompt"]
        assert len(data["images"]) == 1
        img = decode(data["images"][0])
        it = infotext_of(img)
        assert it["Seed"] == str(body(i)["seed"]) and it["Prompt"] == body(i)["prompt"]
        images[i] = px(img)
    for i, ref in refs.items():
        assert np.array_equal(images[i], ref), f"request {i} got another request's picture"
    distinct = {images[i].tobytes() for i in images}
    assert len(distinct) == n


def test_full_queue_is_a_503_and_progress_still_answers(server):
    from webui.engine.jobs import QueueFullError

    release = threading.Event()
    queue = server.engine.queue
    blocker = queue.submit("test-block", lambda state: release.wait(60))
    fillers = 0
    try:
        deadline = time.time() + 10
        while queue.current is not blocker and time.time() < deadline:  # the worker holds it: the queue is empty
            time.sleep(0.01)
        while True:
            try:
                queue.submit("test-fill", lambda state: None)
                fillers += 1
            except QueueFullError:
                break
        t0 = time.time()
        p = requests.get(f"{server.api}/progress", timeout=10).json()
        assert time.time() - t0 < 2
        assert p["state"]["job"] == "test-block" and p["state"]["job_count"] >= 1
        assert p["state"]["queued"] == fillers
        r = requests.post(f"{server.api}/txt2img", json=body(0), timeout=30)
        assert r.status_code == 503 and "queue is full" in r.json()["detail"]
        assert requests.get(f"{server.api}/sd-models", timeout=10).status_code == 200
    finally:
        release.set()
    deadline = time.time() + 30
    while (queue.current is not None or queue.waiting) and time.time() < deadline:
        time.sleep(0.02)
    r = requests.post(f"{server.api}/txt2img", json=body(1), timeout=60)
    assert r.status_code == 200
