"""--api-auth: HTTP Basic on every /sdapi/v1 route; the OpenAPI docs stay at /docs."""
from __future__ import annotations

import pytest
import requests

from tests.api.conftest import start_uvicorn


@pytest.fixture(scope="module")
def auth_url(server):
    from fastapi import FastAPI

    from webui.api import mount_api

    app = FastAPI()
    mount_api(app, server.engine, auth=[("alice", "s3cret"), ("bob", "hunter2")])
    port, stop = start_uvicorn(app)
    yield f"http://127.0.0.1:{port}"
    stop()


ROUTES = [("GET", "progress"), ("GET", "options"), ("POST", "options"), ("GET", "sd-models"), ("GET", "samplers"),
          ("GET", "loras"), ("GET", "memory"), ("GET", "cmd-flags"), ("POST", "txt2img"), ("POST", "img2img"),
          ("POST", "png-info"), ("POST", "interrupt"), ("POST", "skip"), ("POST", "refresh-checkpoints"),
          ("POST", "unload-checkpoint"), ("POST", "extra-single-image")]


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_needs_credentials(auth_url, server, method, path):
    url = f"{auth_url}/sdapi/v1/{path}"
    r = requests.request(method, url, json={}, timeout=30)
    assert r.status_code == 401 and r.headers.get("www-authenticate", "").lower().startswith("basic")
    r = requests.request(method, url, json={}, auth=("alice", "wrong"), timeout=30)
    assert r.status_code == 401
    r = requests.request(method, url, json={}, auth=("mallory", "s3cret"), timeout=30)
    assert r.status_code == 401
    assert server.engine.models.active is not None  # nothing ran


def test_right_credentials_work_with_webuiapi(auth_url, server):
    import webuiapi

    host, port = auth_url.rsplit("/", 1)[-1].split(":")
    api = webuiapi.WebUIApi(host=host, port=int(port), username="bob", password="hunter2", sampler="Euler", steps=2)
    assert sorted(m["title"] for m in api.get_sd_models()) == sorted(server.titles.values())
    r = api.txt2img(prompt="with auth", seed=4, width=64, height=64)
    assert len(r.images) == 1 and r.info["seed"] == 4


def test_docs_stay_available(auth_url):
    assert requests.get(f"{auth_url}/docs", timeout=10).status_code == 200
    spec = requests.get(f"{auth_url}/openapi.json", timeout=10).json()
    assert "/sdapi/v1/txt2img" in spec["paths"] and "/sdapi/v1/progress" in spec["paths"]
