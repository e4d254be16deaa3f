"""A real server for the API tests: two tiny SD1 checkpoints, one Engine, our routes on a FastAPI app, uvicorn on a
free loopback port in a background thread. Shared by the whole tests/api session (starting it costs seconds)."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    host: str
    port: int
    engine: object
    app: object
    data_dir: Path
    titles: dict  # key -> checkpoint title

    @property
    def api(self) -> str:
        return f"{self.url}/sdapi/v1"


def start_uvicorn(app):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="test-uvicorn")
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(10)
        sock.close()

    return port, stop


@pytest.fixture(scope="session")
def api_models(tmp_path_factory):
    from tests.fixtures.tiny_models import make_tiny_pipeline, write_single_file

    d = tmp_path_factory.mktemp("api-models")
    native = {"modelspec.resolution": "64x64"}
    return {
        "a": write_single_file(make_tiny_pipeline("sd1", seed=0), d / "tiny-a.safetensors", "sd1", native),
        "b": write_single_file(make_tiny_pipeline("sd1", seed=1), d / "tiny-b.safetensors", "sd1", native),
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory, api_models):
    from fastapi import FastAPI

    from webui.api import mount_api
    from webui.engine.facade import Engine
    from webui.settings import Settings

    data_dir = tmp_path_factory.mktemp("api-data")
    ckpts = data_dir / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    for src in api_models.values():
        (ckpts / Path(src).name).symlink_to(src)
    engine = Engine(Settings(data_dir=data_dir, ckpt="tiny-a", checkpoint_cache_size=2))
    engine.load_checkpoint()
    titles = {}
    for info in engine.list_checkpoints():
        titles["a" if info.name.startswith("tiny-a") else "b"] = info.title
    app = FastAPI()
    mount_api(app, engine)
    port, stop = start_uvicorn(app)
    yield Server(f"http://127.0.0.1:{port}", "127.0.0.1", port, engine, app, data_dir, titles)
    stop()
    engine.close()


@pytest.fixture
def client(server):
    import webuiapi

    return webuiapi.WebUIApi(host=server.host, port=server.port, sampler="Euler", steps=3)


@pytest.fixture(autouse=True)
def idle_engine(request):
    """Tests start and end with the shared engine idle, on checkpoint 'a', with default API options."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    yield
    eng = srv.engine
    deadline = time.time() + 60
    while (eng.queue.current is not None or eng.queue.waiting) and time.time() < deadline:
        eng.interrupt()
        time.sleep(0.02)
    active = eng.models.active
    if active is None or active.title != srv.titles["a"]:
        eng.load_checkpoint(srv.titles["a"])
    srv.app.state.sdapi.options.clip_skip = 1
    if hasattr(eng.settings, "api_always_save"):
        eng.settings.api_always_save = False
    eng.settings.save_images = True
