"""The server's console as an A1111 user reads it: the real app in a subprocess (as the browser tests start it),
two jobs through the REST API, then its output: one start-up line, one "Total progress" line per job, and none of
the library warnings that mean nothing to the user."""
from __future__ import annotations

import json
import re
import urllib.request

from tests.ui.conftest import AppServer, make_app_dir

NOISE = ("sample_size", "Should have ta>=t0", "Should have tb", "Changing scheduler", "kept in float32: []",
         "FutureWarning")


def post(server: AppServer, path: str, body: dict) -> dict:
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def test_console_shows_one_progress_line_per_job_and_no_library_noise(tmp_path, tiny_files):
    server = AppServer(make_app_dir(tmp_path / "app", tiny_files), ["--api"])
    try:
        server.wait_ready()
        # DPM++ SDE draws its noise with torchsde (its ta>=t0 warnings); two batches make one bar, not two
        a = post(server, "/sdapi/v1/txt2img", {"prompt": "a cat", "steps": 3, "n_iter": 2, "seed": 1,
                                               "sampler_name": "DPM++ SDE", "width": 64, "height": 64})
        b = post(server, "/sdapi/v1/txt2img", {"prompt": "a dog", "steps": 4, "seed": 2, "sampler_name": "Euler",
                                               "width": 64, "height": 64})
        assert len(a["images"]) == 2 and len(b["images"]) == 1
    finally:
        server.stop()
    out = server.log_path.read_bytes().decode("utf-8", "replace")  # bytes: tqdm's \r must stay a \r
    lines = out.split("\n")
    first = lines[0]
    assert first.startswith(f"Latent Studio Web UI on http://localhost:{server.port} · model: tiny-sd1")
    assert "· device: cpu float32 · attention: sdpa" in first and f"/sdapi/v1" in first
    assert sum("Latent Studio" in line for line in lines) == 1

    bars = [line for line in lines if "Total progress" in line]
    assert len(bars) == 2, out
    finals = [bar.split("\r")[-1] for bar in bars]
    for final in finals:
        done, total = map(int, re.search(r"\| (\d+)/(\d+) \[", final).groups())
        assert final.startswith("Total progress: 100%") and done == total, final
    assert re.search(r"\| 4/4 \[", finals[1])  # Euler: 4 steps, one batch
    assert int(re.search(r"\| (\d+)/", finals[0]).group(1)) % 2 == 0  # two batches of the same steps
    for noise in NOISE:
        assert noise not in out, f"{noise!r} on the console:\n{out}"
