"""The A1111 API on Ray Serve against the plain server, in one run, on CPU with the built-in model:

* throughput (images/s) of the Ray deployment with 1 replica and with 2 (one CPU and one torch thread each), the
  same requests sent `--concurrency` at a time;
* the latency of one request through Ray (ingress -> replica -> ingress) against the plain server
  (`python app.py --nowebui`, one torch thread), as a ratio; also at 1 step, where the fixed cost shows.

    nice -n 5 python bench/ray_serve.py [--requests 16] [--steps 20] [--repeat 5]

Needs requirements-ray.txt. Other work on the machine shows in the figures: run it on a quiet one, or say so.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHECKPOINT = ROOT / "models" / "Stable-diffusion" / "latent-studio-shapes-v1.safetensors"
AUTH = ("bench", "bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(steps: int, seed: int) -> dict:
    return {"prompt": "a small red circle at the top left on a blue background", "steps": steps, "width": 64,
            "height": 64, "sampler_name": "Euler", "seed": seed}


def post(url: str, steps: int, seed: int) -> float:
    start = time.perf_counter()
    r = httpx.post(f"{url}/sdapi/v1/txt2img", json=body(steps, seed), auth=AUTH, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - start


def latency(url: str, steps: int, repeat: int) -> float:
    post(url, steps, 0)  # warm: model loaded, first-call costs paid
    return statistics.median(post(url, steps, seed) for seed in range(1, repeat + 1))


def throughput(url: str, steps: int, n: int, concurrency: int) -> float:
    post(url, steps, 0)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda seed: post(url, steps, seed), range(100, 100 + n)))
    return n / (time.perf_counter() - start)


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the plain server exited ({proc.returncode})")
        try:
            if httpx.get(f"{url}/sdapi/v1/options", auth=AUTH, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the plain server did not start")


def start_plain(data: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one torch thread, as each replica
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--data-dir", str(data), "--nowebui",
                             "--api-auth", ":".join(AUTH), "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return url, proc


def side_by_side(plain: str, ray: str, steps: int, repeat: int) -> tuple[float, float]:
    """Median latency of one request on each, the two taking turns (drift in the machine's load hits both)."""
    post(plain, steps, 0), post(ray, steps, 0)
    times: dict[str, list[float]] = {plain: [], ray: []}
    for seed in range(1, repeat + 1):
        for url in (plain, ray) if seed % 2 else (ray, plain):
            times[url].append(post(url, steps, seed))
    return statistics.median(times[plain]), statistics.median(times[ray])


def deploy(data: Path, replicas: int, port: int) -> str:
    from ray import serve

    from webui.serving.ray_app import build_application
    from webui.serving.ray_config import APP_NAME

    argv = ["--data-dir", str(data), "--api-auth", ":".join(AUTH), "serve-ray", "--replicas", str(replicas),
            "--cpus-per-replica", "1", "--threads-per-replica", "1", "--max-ongoing-requests", "2"]
    serve.run(build_application(argv), name=APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=16, help="requests per throughput run")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5, help="requests per latency figure (median)")
    args = p.parse_args()

    import ray
    from ray import serve

    from webui.serving.ray_app import start_ray, stop
    from webui.serving.ray_config import APP_NAME

    data = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(CHECKPOINT, data / "models" / "Stable-diffusion" / CHECKPOINT.name)
    print(f"{os.cpu_count()} CPUs; 64 px, {args.steps} steps, Euler; {args.requests} requests "
          f"{args.concurrency} at a time", flush=True)
    plain_url, plain = start_plain(data)
    start_ray(num_cpus=3)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        url = deploy(data, 1, port)
        plain_ms, ray_ms = side_by_side(plain_url, url, args.steps, args.repeat)
        plain_1, ray_1 = side_by_side(plain_url, url, 1, args.repeat)  # the fixed cost, with little work around it
        plain.terminate()
        for replicas in (1, 2, 1, 2):  # taking turns, as above (a changed replica count updates in place)
            url = deploy(data, replicas, port)
            rates[replicas].append(throughput(url, args.steps, args.requests, args.concurrency))
            print(f"  {replicas} replica(s): {rates[replicas][-1]:.2f} images/s", flush=True)
    finally:
        plain.terminate()
        stop(APP_NAME)
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(data, ignore_errors=True)
    one, two = statistics.mean(rates[1]), statistics.mean(rates[2])
    print(f"plain server, one request:      {plain_ms * 1000:7.0f} ms (median of {args.repeat})")
    print(f"Ray Serve, one request:         {ray_ms * 1000:7.0f} ms (median of {args.repeat}, taking turns)")
    print(f"latency overhead of the Ray path: x{ray_ms / plain_ms:.2f} (Ray / plain)")
    print(f"same at 1 step: {plain_1 * 1000:.0f} ms plain, {ray_1 * 1000:.0f} ms Ray: x{ray_1 / plain_1:.2f}, "
          f"+{(ray_1 - plain_1) * 1000:.0f} ms")
    print(f"throughput, 1 replica:          {one:7.2f} images/s (mean of 2 runs)")
    print(f"throughput, 2 replicas:         {two:7.2f} images/s (mean of 2 runs)")
    print(f"2 replicas / 1 replica:           x{two / one:.2f}")


if __name__ == "__main__":
    main()
