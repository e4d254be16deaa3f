"""Issue 18: A1111 routes that were missing (/internal/ping, refresh-embeddings, sd-modules, and the server-* routes
of --api-server-stop), /cmd-flags with the launch flags, --api-log, and the apps `python app.py` builds with these
flags (webui.server.create_app)."""
from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import requests
import torch

from tests.fixtures.network_files import write_embedding_safetensors
from webui.flags import build_parser
from webui.server import RESTART_EXIT_CODE, create_app, credentials_from_args


def app_for(engine, *argv: str):
    args = build_parser().parse_args(list(argv))
    ui, api = credentials_from_args(args)
    return create_app(args, engine, None, ui, api)[0]


@contextmanager
def running(app):
    """`app` served by its own uvicorn on a free port, known to the app's server control like `serve` does it."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    app.state.server_control.server = server
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", thread
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_internal_ping_answers_an_empty_object(server):
    r = requests.get(f"{server.url}/internal/ping", timeout=10)
    assert r.status_code == 200 and r.json() == {}


def test_refresh_embeddings_reads_the_folder_again(server):
    folder = server.engine.settings.embeddings_path
    folder.mkdir(parents=True, exist_ok=True)
    path = write_embedding_safetensors(folder / "lsrefreshed.safetensors", emb_params=torch.zeros(1, 32))
    try:
        r = requests.post(f"{server.api}/refresh-embeddings", timeout=30)
        assert r.status_code == 200 and r.json() == {}
        listed = requests.get(f"{server.api}/embeddings", timeout=30).json()
        assert "lsrefreshed" in {**listed["loaded"], **listed["skipped"]}
    finally:
        path.unlink()
        requests.post(f"{server.api}/refresh-embeddings", timeout=30)
    listed = requests.get(f"{server.api}/embeddings", timeout=30).json()
    assert listed == {"loaded": {}, "skipped": {}}


def test_sd_modules_lists_the_vae_files_as_sd_vae_does(server):
    assert requests.get(f"{server.api}/sd-modules", timeout=10).json() == []
    folder = server.data_dir / "models" / "VAE"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "module-test.vae.safetensors"
    path.write_bytes(b"not read for a listing")
    try:
        modules = requests.get(f"{server.api}/sd-modules", timeout=10).json()
        assert modules == [{"model_name": "module-test.vae.safetensors", "filename": str(path)}]
        assert modules == requests.get(f"{server.api}/sd-vae", timeout=10).json()
    finally:
        path.unlink()


@pytest.mark.parametrize("name", ["server-stop", "server-kill", "server-restart"])
def test_server_routes_are_404_without_api_server_stop(server, name):
    r = requests.post(f"{server.api}/{name}", timeout=10)
    assert r.status_code == 404
    assert requests.get(f"{server.url}/internal/ping", timeout=10).json() == {}  # still serving


def test_cmd_flags_report_the_launch_flags_by_their_a1111_names(server, caplog):
    from fastapi.testclient import TestClient

    app = app_for(server.engine, "--nowebui", "--port", "7861", "--gradio-auth", "u:p", "--ngrok-region", "eu",
                  "--no-download-sd-model", "--api-log", "--precision", "full")
    with caplog.at_level(logging.INFO, logger="webui.server"), TestClient(app) as client:
        assert client.get("/internal/ping").status_code == 401  # an API route: it needs the log-in too
        assert client.get("/internal/ping", auth=("u", "p")).json() == {}
        flags = client.get("/sdapi/v1/cmd-flags", auth=("u", "p")).json()
    assert (flags["port"], flags["nowebui"], flags["api"], flags["api_log"]) == (7861, True, False, True)
    assert (flags["ngrok_region"], flags["no_download_sd_model"], flags["autolaunch"]) == ("eu", True, False)
    assert flags["gradio_auth"] is None and flags["api_auth"] is None and "u:p" not in str(flags)
    assert flags["data_dir"] == str(server.data_dir) and flags["api_server_stop"] is False
    assert flags["precision"] == "autocast"  # what the running engine uses, not what this app's flags would ask
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("API ")]
    assert [line.split()[:4] for line in logged] == [
        ["API", "401", "GET", "/internal/ping"], ["API", "200", "GET", "/internal/ping"],
        ["API", "200", "GET", "/sdapi/v1/cmd-flags"]]


def test_theme_sends_the_ui_page_to_gradios_colour_scheme():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from webui.server import ThemeRedirect

    app = FastAPI()
    app.add_api_route("/", lambda: {"page": True})
    app.add_middleware(ThemeRedirect, theme="dark")
    client = TestClient(app)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/?__theme=dark"
    assert client.get("/?view=api", follow_redirects=False).headers["location"] == "/?view=api&__theme=dark"
    assert client.get("/?__theme=light").json() == {"page": True}  # a scheme the user picked stays


@pytest.mark.parametrize("name, answer", [("server-stop", "Stopping."), ("server-kill", "Killing.")])
def test_server_stop_and_kill_answer_then_stop_the_server(server, name, answer):
    app = app_for(server.engine, "--nowebui", "--api-server-stop")
    with running(app) as (url, thread):
        r = requests.post(f"{url}/sdapi/v1/{name}", timeout=10)
        assert (r.status_code, r.text) == (200, answer)
        thread.join(10)
        assert not thread.is_alive() and app.state.server_control.exit_code == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/internal/ping", timeout=5)
    assert requests.get(f"{server.url}/internal/ping", timeout=10).json() == {}  # the shared server is untouched


def test_server_restart_only_when_something_will_start_it_again(server, monkeypatch):
    app = app_for(server.engine, "--nowebui", "--api-server-stop")
    monkeypatch.delenv("SD_WEBUI_RESTART", raising=False)
    with running(app) as (url, thread):
        r = requests.post(f"{url}/sdapi/v1/server-restart", timeout=10)
        assert r.status_code == 501 and "SD_WEBUI_RESTART" in r.json()["detail"]
        assert requests.get(f"{url}/internal/ping", timeout=10).json() == {}  # still serving
        monkeypatch.setenv("SD_WEBUI_RESTART", "1")
        r = requests.post(f"{url}/sdapi/v1/server-restart", timeout=10)
        assert (r.status_code, r.text) == (200, "Restarting.")
        thread.join(10)
        assert not thread.is_alive() and app.state.server_control.exit_code == RESTART_EXIT_CODE == 75


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_py_with_a1111_flags_serves_and_exits_75_on_restart(tmp_path):
    """`python app.py` as webui-user.sh starts it: flags from COMMANDLINE_ARGS, --vae-path chosen at start, and
    /server-restart ends the process with the status a supervisor restarts on."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    vae = tmp_path / "my-vaes" / "kl-f8.safetensors"
    vae.parent.mkdir()
    save_file({"w": torch.zeros(2)}, str(vae))
    port = _free_port()
    env = {**os.environ, "SD_WEBUI_RESTART": "1", "HF_HUB_OFFLINE": "1",
           "COMMANDLINE_ARGS": f"--nowebui --api-server-stop --port 1 --autolaunch --vae-path '{vae}'"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(tmp_path), "--port", str(port)], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{url}/internal/ping", timeout=2).json() == {}:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        options = requests.get(f"{url}/sdapi/v1/options", timeout=10).json()
        assert options["sd_vae"] == "kl-f8.safetensors"
        assert requests.get(f"{url}/sdapi/v1/cmd-flags", timeout=10).json()["vae_path"] == str(vae)
        assert requests.post(f"{url}/sdapi/v1/server-restart", timeout=10).text == "Restarting."
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 75
    assert "A1111 flags with no effect here: --autolaunch" in out and f"API on http://localhost:{port}" in out
