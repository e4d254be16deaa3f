"""Issue 15, items 1-4 and 12: the whole app (UI + API, as `python app.py --api ...` builds it) through FastAPI's
test client, with the requests the attacker's probe sent."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PIL import Image

from webui.cli import build_parser, settings_from_args
from webui.server import create_app, credentials_from_args


def app_for(engine, *argv: str):
    args = build_parser().parse_args(list(argv))
    ui, api = credentials_from_args(args)
    app, _ = create_app(args, engine, None, ui, api)
    return app


@pytest.fixture(scope="module")
def guarded_engine(tmp_path_factory, api_models):
    from webui.engine.facade import Engine
    from webui.settings import Settings

    data_dir = tmp_path_factory.mktemp("guard-data")
    ckpts = data_dir / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    (ckpts / Path(api_models["a"]).name).symlink_to(api_models["a"])
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-a"))
    engine.load_checkpoint()
    yield engine
    engine.close()


def test_client(app, **kw):
    from fastapi.testclient import TestClient

    return TestClient(app, **kw)


test_client.__test__ = False  # a helper, not a test


# ---- 1. arbitrary file read ------------------------------------------------------------------------------

def test_file_route_serves_only_images_from_outputs(guarded_engine):
    outputs = guarded_engine.settings.outputs_path / "txt2img-images" / "2026-12-01"
    outputs.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 200, 30)).save(outputs / "00001-5.png")
    (outputs / "notes.txt").write_text("not an image")
    (outputs / "passwd.png").symlink_to("/etc/passwd")
    with test_client(app_for(guarded_engine)) as client:
        r = client.get(f"/gradio_api/file={outputs / '00001-5.png'}")
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        for path in (outputs / "notes.txt", Path("/etc/passwd"), guarded_engine.settings.settings_file,
                     outputs / "passwd.png"):
            r = client.get(f"/gradio_api/file={path}")
            assert r.status_code in (403, 404), path
            assert b"root:" not in r.content


@pytest.mark.parametrize("value", ["/", "/etc", "~", "..", "models", "models/Stable-diffusion/x", "cache"])
def test_outputs_folder_setting_refuses_folders_that_expose_files(guarded_engine, value):
    from webui.settings import SettingError, updated_settings

    with pytest.raises(SettingError, match="outputs_dir"):
        updated_settings(guarded_engine.settings, {"outputs_dir": value})


def test_settings_tab_refuses_root_as_outputs_and_nothing_is_saved(guarded_engine):
    from webui.ui.context import UiContext
    from webui.ui.settings_tab import apply_settings

    before = guarded_engine.settings
    msg, kind = apply_settings(UiContext(guarded_engine), {"outputs_dir": "/", "default_steps": 9})
    assert kind == "error" and "outputs_dir" in msg
    assert guarded_engine.settings is before and not guarded_engine.settings.settings_file.exists()


def test_a_folder_of_its_own_is_accepted(guarded_engine, tmp_path):
    from webui.settings import updated_settings

    settings, restart = updated_settings(guarded_engine.settings.with_overrides(data_dir=tmp_path / "d"),
                                         {"outputs_dir": str(tmp_path / "pictures")})
    assert restart == ["outputs_dir"] and "pictures" in (tmp_path / "d" / "config.yaml").read_text()


@pytest.mark.parametrize("flags", [["--listen"], ["--share"], ["--hide-ui-dir-config"], ["--freeze-settings"]])
def test_folder_settings_locked_when_exposed_or_frozen(tmp_path, flags):
    from webui.settings import SettingLocked, updated_settings

    settings, _ = settings_from_args(build_parser().parse_args(["--data-dir", str(tmp_path), *flags]))
    with pytest.raises(SettingLocked, match="outputs_dir|frozen"):
        updated_settings(settings, {"outputs_dir": str(tmp_path / "elsewhere")})
    assert not (tmp_path / "config.yaml").exists()
    if "--freeze-settings" in flags:
        with pytest.raises(SettingLocked, match="frozen"):
            updated_settings(settings, {"default_steps": 30})
    else:
        assert updated_settings(settings, {"default_steps": 30})[0].default_steps == 30


def test_settings_file_with_root_outputs_is_not_used(tmp_path):
    from webui.settings import Settings, load_user_settings

    (tmp_path / "config.yaml").write_text("outputs_dir: /\ndefault_steps: 12\n")
    settings, notice = load_user_settings(Settings(data_dir=tmp_path))
    assert settings.outputs_dir is None and settings.default_steps == 12
    assert "outputs_dir" in notice and list(tmp_path.glob("config.yaml.invalid-*"))


# ---- 2. CORS: only the app's own origin and --cors-allow-origins ----------------------------------------------

@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8888", "null"])
def test_other_local_origins_get_no_cors_answer(guarded_engine, origin):
    with test_client(app_for(guarded_engine, "--api")) as client:
        r = client.get("/config", headers={"Origin": origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = client.options("/gradio_api/queue/join", headers={"Origin": origin,
                                                               "Access-Control-Request-Method": "POST"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers  # preflight refused


def test_cors_allow_origins_flag(guarded_engine):
    app = app_for(guarded_engine, "--api", "--cors-allow-origins", "http://localhost:3000,https://tool.example")
    with test_client(app) as client:
        r = client.get("/sdapi/v1/samplers", headers={"Origin": "http://localhost:3000"})
        assert r.headers.get("access-control-allow-origin") == "http://localhost:3000"
        r = client.post("/sdapi/v1/interrupt", headers={"Origin": "https://tool.example"})
        assert r.status_code == 200
        r = client.get("/sdapi/v1/samplers", headers={"Origin": "http://localhost:4000"})
        assert "access-control-allow-origin" not in r.headers


# ---- 3. cross-site form posts --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/sdapi/v1/unload-checkpoint", "/sdapi/v1/interrupt", "/sdapi/v1/options"])
def test_cross_site_posts_are_refused(guarded_engine, path):
    with test_client(app_for(guarded_engine, "--api")) as client:
        r = client.post(path, data={"a": "1"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.json()["detail"]
        r = client.post(path, content=b"{}", headers={"Referer": "http://evil.example/page",
                                                      "Content-Type": "application/json"})
        assert r.status_code == 403
        r = client.post(path, data={"a": "1"})  # a form body without Origin (old browsers, curl -d)
        assert r.status_code == 415 and "JSON" in r.json()["detail"]
        r = client.post(path, content=b'{"x": 1}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
    assert guarded_engine.models.active is not None  # unload-checkpoint did not run


def test_same_origin_and_plain_clients_still_work(guarded_engine):
    with test_client(app_for(guarded_engine, "--api")) as client:
        assert client.post("/sdapi/v1/interrupt", headers={"Origin": "http://testserver"}).status_code == 200
        assert client.post("/sdapi/v1/interrupt").status_code == 200  # webuiapi sends no body and no Origin
        assert client.post("/sdapi/v1/options", json={}).status_code == 200


# ---- 4. every route needs the log-in ----------------------------------------------------------------------

OPEN_BEFORE = [("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/docs/oauth2-redirect"),
               ("GET", "/gradio_api/runs"), ("GET", "/gradio_api/user"), ("GET", "/gradio_api/token"),
               ("GET", "/gradio_api/app_id"), ("GET", "/gradio_api/heartbeat/abc"),
               ("POST", "/gradio_api/cancel"), ("POST", "/gradio_api/reset"), ("GET", "/sdapi/v1/options")]


def test_every_route_needs_credentials(guarded_engine):
    with test_client(app_for(guarded_engine, "--api", "--auth", "ann:secret")) as client:
        for method, path in OPEN_BEFORE:
            r = client.request(method, path, json={})
            assert r.status_code == 401, (method, path, r.status_code)
        assert client.get("/docs", auth=("ann", "secret")).status_code == 200
        assert "/sdapi/v1/txt2img" in client.get("/openapi.json", auth=("ann", "secret")).json()["paths"]
        # the login page and its assets stay reachable, and the log-in cookie opens the UI routes
        assert client.get("/").status_code == 200
        assert client.post("/login", data={"username": "ann", "password": "secret"}).status_code == 200
        assert client.get("/gradio_api/app_id").status_code == 200
        assert client.get("/gradio_api/user").json() == "ann"


def test_failed_logins_are_throttled(guarded_engine):
    with test_client(app_for(guarded_engine, "--api", "--auth", "ann:secret")) as client:
        codes = [client.get("/sdapi/v1/options", auth=("ann", f"guess{i}")).status_code for i in range(12)]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        r = client.get("/sdapi/v1/options", auth=("ann", "secret"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # even the right one waits
    with test_client(app_for(guarded_engine, "--auth", "ann:secret")) as client:
        codes = [client.post("/login", data={"username": "ann", "password": f"g{i}"}).status_code for i in range(11)]
        assert codes[:10] == [400] * 10 and codes[10] == 429


# ---- 7 (server level). bodies over the limit ---------------------------------------------------------------

def test_huge_body_gets_413_before_it_is_read(guarded_engine):
    from tests.api.conftest import start_uvicorn

    port, stop = start_uvicorn(app_for(guarded_engine, "--api"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 314572800\r\n\r\n{\"prompt\": \"")
            answer = b""
            while b"limit" not in answer and len(answer) < 8192:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            answer = answer.decode("latin-1")
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert "too large" in answer
    finally:
        stop()


# ---- 12. a client that has gone -----------------------------------------------------------------------------

def test_waiting_job_of_a_disconnected_client_is_dropped(server):
    import threading
    import time

    import httpx

    engine = server.engine
    gate = threading.Event()
    blocker = engine.queue.submit("block", lambda st: gate.wait(30))
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.api}/txt2img", json={"prompt": "gone", "seed": 4242, "steps": 1, "width": 64,
                                                      "height": 64, "save_images": True}, timeout=1.5)
        deadline = time.time() + 10
        while engine.queue.waiting and time.time() < deadline:
            time.sleep(0.1)
        assert engine.queue.waiting == 0  # dropped while the blocker still runs
    finally:
        gate.set()
        blocker.result(10)
    time.sleep(0.5)
    assert not list(Path(server.data_dir, "outputs").rglob("*-4242.png"))
