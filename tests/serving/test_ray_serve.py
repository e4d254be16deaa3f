"""The A1111 API on Ray Serve, on CPU: one local Ray cluster for the module, the ingress and 2 generation replicas
(one CPU and one torch thread each) of the built-in model at 64 px, behind the API log-in. Checks work spread over
both replicas, checkpoints landing on the replica that holds them (counting loads), progress and interrupt reaching
the replica that runs the job, and a replica killed mid-job: a clear 503, a new replica, later requests served."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is an optional extra (requirements-ray.txt)")



import httpx
from PIL import Image

from tests.fixtures.builtin_generate import CHECKPOINT

pytestmark = pytest.mark.slow
AUTH = ("ray", "serve-secret")
COPY = "shapes-copy.safetensors"
BASE = {"prompt": "a small red circle at the top left on a blue background", "steps": 4, "width": 64, "height": 64,
        "sampler_name": "Euler", "cfg_scale": 5}


@pytest.fixture(scope="module")
def ray_api(tmp_path_factory):
    """(base URL, data folder). Two checkpoints: the built-in one and a copy of it under another name."""
    import ray
    from ray import serve

    from webui.serving.ray_app import build_application, start_ray, stop
    from webui.serving.ray_config import APP_NAME

    data = tmp_path_factory.mktemp("ray-data")
    checkpoints = data / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    shutil.copy(CHECKPOINT, checkpoints / CHECKPOINT.name)
    shutil.copy(CHECKPOINT, checkpoints / COPY)
    start_ray(num_cpus=3)  # 2 replicas x 1 CPU, the ingress (0.1) and the JobControl actor (0)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    argv = ["--data-dir", str(data), "--api-auth", ":".join(AUTH), "serve-ray", "--replicas", "2",
            "--cpus-per-replica", "1", "--threads-per-replica", "1", "--max-ongoing-requests", "2"]
    serve.run(build_application(argv), name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}", data
    finally:
        stop(APP_NAME)
        serve.shutdown()
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def txt2img(url: str, timeout: float = 120, **fields) -> httpx.Response:
    return httpx.post(f"{url}/sdapi/v1/txt2img", json={**BASE, **fields}, auth=AUTH, timeout=timeout)


def replicas(url: str) -> dict[str, dict]:
    r = httpx.get(f"{url}/internal/replicas", auth=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return {item["name"]: item for item in r.json()["replicas"]}


def pixels(b64: str) -> str:
    return hashlib.sha256(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB").tobytes()).hexdigest()


def titles(url: str) -> dict[str, str]:
    items = httpx.get(f"{url}/sdapi/v1/sd-models", auth=AUTH, timeout=30).json()
    return {("copy" if item["model_name"].startswith("shapes-copy") else "builtin"): item["title"] for item in items}


def test_every_route_asks_for_the_api_log_in(ray_api):
    url, _ = ray_api
    for method, path in (("GET", "/sdapi/v1/options"), ("POST", "/sdapi/v1/txt2img"), ("GET", "/internal/replicas"),
                         ("GET", "/sdapi/v1/progress")):
        r = httpx.request(method, f"{url}{path}", json=BASE if method == "POST" else None, timeout=30)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Basic", (path, r.status_code)
    assert httpx.get(f"{url}/sdapi/v1/options", auth=("ray", "wrong"), timeout=30).status_code == 401
    bad = httpx.post(f"{url}/sdapi/v1/txt2img", json={**BASE, "sampler_name": "No Such"}, auth=AUTH, timeout=30)
    assert bad.status_code == 404 and "No Such" in bad.json()["detail"]  # refused by the ingress, as the plain server


def test_sixteen_concurrent_requests_all_succeed_on_both_replicas(ray_api):
    url, data = ray_api
    seeds = list(range(1000, 1016))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda s: txt2img(url, seed=s, save_images=True), seeds))
    assert [r.status_code for r in answers] == [200] * 16, [r.text[:200] for r in answers if r.status_code != 200]
    infos = [json.loads(r.json()["info"]) for r in answers]
    assert [i["seed"] for i in infos] == seeds
    assert len({pixels(r.json()["images"][0]) for r in answers}) == 16  # each its own image
    served = replicas(url)
    assert len(served) == 2 and all(item["jobs"] > 0 for item in served.values()), served
    assert len({item["pid"] for item in served.values()}) == 2
    saved = sorted((data / "outputs" / "txt2img-images").rglob("*.png"))  # both replicas write the shared folder
    assert len(saved) == 16


def test_checkpoints_go_to_the_replica_that_holds_them(ray_api):
    url, _ = ray_api
    names = titles(url)
    before = replicas(url)
    copy = {"override_settings": {"sd_model_checkpoint": names["copy"]}}
    first = txt2img(url, seed=7, **copy)
    assert first.status_code == 200, first.text
    assert json.loads(first.json()["info"])["sd_model_name"].startswith("shapes-copy")
    time.sleep(2)  # the router learns which replica now holds the copy (Ray Serve pushes it)
    with ThreadPoolExecutor(2) as pool:
        for seed in range(4):  # one request for each checkpoint at a time: each replica has room for its own
            pair = [pool.submit(txt2img, url, seed=seed), pool.submit(txt2img, url, seed=seed, **copy)]
            assert [f.result().status_code for f in pair] == [200, 200]
    after = replicas(url)
    loads = {name: sum(after[name]["loads"].values()) - sum(before[name]["loads"].values()) for name in after}
    assert sum(loads.values()) == 1, loads  # the copy was loaded once; the built-in model never again
    holder = next(name for name in after if after[name]["models"] == [names["copy"]])
    other = next(name for name in after if name != holder)
    assert after[other]["models"] == [names["builtin"]]

    def served(name, title):
        return after[name]["served"].get(title, 0) - before[name]["served"].get(title, 0)

    assert served(holder, names["copy"]) == 5 and served(holder, names["builtin"]) == 0
    assert served(other, names["builtin"]) == 4 and served(other, names["copy"]) == 0


def test_progress_and_interrupt_reach_the_replica_running_the_job(ray_api):
    url, _ = ray_api
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(txt2img, url, seed=3, steps=150, n_iter=8)
        step = _wait_for(lambda: _running_step(url), "the job to report sampling steps")
        assert step > 0
        assert httpx.post(f"{url}/sdapi/v1/interrupt", auth=AUTH, timeout=30).status_code == 200
        answer = slow.result(timeout=120)
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    assert info["interrupted"] is True and len(answer.json()["images"]) < 8  # stopped before the batch count ran out


def test_a_replica_killed_mid_job_is_replaced_and_later_requests_succeed(ray_api):
    import ray

    url, _ = ray_api
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(txt2img, url, seed=11, steps=150, n_iter=8)
        name = _wait_for(lambda: next((n for n, r in replicas(url).items() if r["running"]), None),
                         "a replica to take the job")
        _wait_for(lambda: _running_step(url), "the job to start")
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        answer = slow.result(timeout=60)  # not a hang
    assert answer.status_code == 503, (name, answer.text)
    body = answer.json()
    assert "stopped before the job finished" in body["detail"] and name in body["detail"]
    assert answer.headers["retry-after"]
    _wait_for(lambda: _two_running_replicas(name), "Ray Serve to replace the replica", timeout=120)
    with ThreadPoolExecutor(4) as pool:
        later = list(pool.map(lambda s: txt2img(url, seed=s), range(20, 24)))
    assert [r.status_code for r in later] == [200] * 4, [r.text[:300] for r in later]


def _running_step(url: str) -> int:
    state = httpx.get(f"{url}/sdapi/v1/progress", auth=AUTH, timeout=30).json()["state"]
    return state["sampling_step"] if state["job"] else 0


def _two_running_replicas(dead: str) -> bool:
    """The killed replica's actor is gone, a new one has its place, and Ray Serve reports both running."""
    import ray
    from ray import serve

    from webui.serving.ray_config import APP_NAME, GENERATOR

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"#{GENERATOR}#" in a["name"]]
    states = serve.status().applications[APP_NAME].deployments[GENERATOR].replica_states
    return len(names) == 2 and dead not in names and states == {"RUNNING": 2}


def _wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
