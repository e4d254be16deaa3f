"""The Ray Serve application: the ingress deployment serves /sdapi/v1 with the plain server's FastAPI app (the same
routers, web guard and Basic auth: webui.server.create_app, API only) on a RemoteEngine that forwards generation to
the generation deployment (webui/serving/generation.py).

    python app.py serve-ray --replicas 2                 # `serve_ray`: starts (or joins) Ray, runs until Ctrl+C
    serve run webui/serving/serve_config.yaml            # `build_app`: the builder the YAML's import_path names
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

from ray import serve

from webui.serving.generation import Generator
from webui.serving.ray_config import (
    APP_NAME,
    ConfigError,
    RayServeConfig,
    argv_from_yaml_args,
)
from webui.settings import ROOT

log = logging.getLogger(__name__)


@serve.ingress()  # the app is built in each replica (__serve_build_asgi_app__), after __init__
class Ingress:
    def __init__(self, generator, argv: list[str], app_name: str):
        from webui.engine import Engine
        from webui.extensions import load_extensions
        from webui.flags import build_parser, settings_from_args
        from webui.server import create_app, credentials_from_args
        from webui.serving.job_control import job_control
        from webui.serving.remote_engine import RemoteEngine

        args = build_parser().parse_args(argv)
        args.nowebui, args.api, args.api_server_stop = True, True, False  # the API only; Ray stops the server
        settings, _ = settings_from_args(args)
        extensions = load_extensions(settings)
        catalog = Engine(settings, hooks=extensions.hooks)  # lists and checks; never loads a model
        config = RayServeConfig.from_args(args)
        self.engine = RemoteEngine(catalog, generator, job_control(app_name), config.models_per_replica)
        ui_auth, api_auth = credentials_from_args(args)
        self.api_app, _ = create_app(args, self.engine, None, ui_auth, api_auth, extensions)
        # which replica holds which checkpoint, has loaded what, runs which job (behind the API log-in)
        self.api_app.add_api_route("/internal/replicas", lambda: {"replicas": self.engine.replicas()}, methods=["GET"],
                               tags=["internal"])

    def __serve_build_asgi_app__(self):
        return self.api_app

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


def build_application(argv: list[str]):
    """The bound application for a `serve-ray` command line (flags parsed again in every replica)."""
    from webui.flags import build_parser

    config = RayServeConfig.from_args(build_parser().parse_args(argv))
    generator = serve.deployment(Generator).options(**config.generator_options()).bind(argv, APP_NAME)
    return serve.deployment(Ingress).options(**config.ingress_options()).bind(generator, argv, APP_NAME)


def build_app(args: dict):
    """`serve run` / `serve deploy` builder: the YAML's `args` (flags, replicas, autoscale, ...) -> the application."""
    return build_application(argv_from_yaml_args(dict(args or {})))


def runtime_env() -> dict:
    """Ray workers import webui from this checkout (on a cluster: the same path on every node, or an image)."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "HF_HUB_OFFLINE": "1",
                         "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}}


def start_ray(address: str | None = None, **kw) -> None:
    """Join the Ray cluster at `address` (or RAY_ADDRESS), else start a local one for this process."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network at run time
    local = not (address or os.environ.get("RAY_ADDRESS"))
    extra = {"include_dashboard": False, "_node_ip_address": "127.0.0.1"} if local else {}
    ray.init(address=address, runtime_env=runtime_env(), logging_level=logging.WARNING, **extra, **kw)


def serve_ray(args, argv: list[str]) -> int:
    """`python app.py serve-ray ...`: deploy, print the address, serve until Ctrl+C. Returns the exit status."""
    from webui.flags import bind_host
    from webui.server import FlagError, credentials_from_args, loud, security_warnings

    try:
        config = RayServeConfig.from_args(args)
        ui_auth, api_auth = credentials_from_args(args)
    except (ConfigError, FlagError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.nowebui = True
    warnings = security_warnings(args, ui_auth, api_auth)
    if warnings:
        loud(warnings)
    start_ray(args.address)
    host = bind_host(args)
    serve.start(http_options={"host": host, "port": args.port})
    try:
        serve.run(build_application(argv), name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as exc:  # noqa: BLE001 - a replica that cannot start (no GPU left, bad folder ...)
        print(f"error: the Ray Serve application did not start: {exc}", file=sys.stderr)
        return 1
    shown = "localhost" if host == "127.0.0.1" else host
    scale = (f"{config.autoscale[0]}-{config.autoscale[1]} replicas (autoscaled)" if config.autoscale
             else f"{config.replicas} replica{'s' * (config.replicas > 1)}")
    print(f"Latent Studio API on Ray Serve: http://{shown}:{args.port}/sdapi/v1 ({scale}, "
          f"{config.gpus_per_replica:g} GPU and {config.cpus_per_replica:g} CPU each). Ctrl+C stops it.", flush=True)
    signal.signal(signal.SIGTERM, _interrupted)  # a supervisor's stop (systemd, Kubernetes) stops as Ctrl+C does
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(APP_NAME)
    return 0


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def stop(app_name: str) -> None:
    """Delete the application and its JobControl actor (the Ray cluster itself stays when it was joined)."""
    import ray

    from webui.serving.job_control import job_control

    serve.delete(app_name)
    with contextlib.suppress(Exception):  # already gone
        ray.kill(job_control(app_name))
