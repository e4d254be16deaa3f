"""`python app.py` without a subcommand: the web UI and/or the REST API on one FastAPI app served by uvicorn.

flags -> Settings -> Engine (default checkpoint loads in the background, the page never waits for it) ->
FastAPI app -> [REST API with --api / --nowebui] -> Gradio Blocks mounted at / (unless --nowebui) -> uvicorn.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from webui.flags import bind_host, cmd_flags, exposure, settings_from_args

log = logging.getLogger(__name__)

MAX_UPLOAD = "64mb"
RESTART_EXIT_CODE = 75  # what /sdapi/v1/server-restart exits with, for a supervisor to start the app again
Credentials = list[tuple[str, str]]


class FlagError(ValueError):
    pass


def parse_credentials(text: str | None) -> Credentials:
    """'u:p,u2:p2' (or one per line) -> [(u, p), ...]. Blank entries and lines starting with # are ignored."""
    out: Credentials = []
    for line in (text or "").splitlines():
        if line.strip().startswith("#"):
            continue
        for item in line.split(","):
            item = item.strip()
            if not item:
                continue
            user, sep, password = item.partition(":")
            if not sep or not user or not password:
                raise FlagError(f"credentials must look like user:password (got {item.split(':')[0]!r}:...)")
            out.append((user, password))
    return out


def credentials_from_args(args) -> tuple[Credentials, Credentials]:
    """(UI log-ins, API log-ins). --auth protects both; --api-auth adds log-ins for the API only."""
    ui = parse_credentials(getattr(args, "auth", None))
    auth_file = getattr(args, "auth_file", None)
    if auth_file:
        try:
            ui += parse_credentials(Path(auth_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise FlagError(f"cannot read --auth-file {auth_file}: {exc}") from exc
    api = parse_credentials(getattr(args, "api_auth", None))
    return ui, (api or ui)


def security_warnings(args, ui_auth: Credentials, api_auth: Credentials) -> list[str]:
    out = []
    exposed = exposure(args)
    if exposed and not ui_auth and not args.nowebui:
        out.append(f"{' and '.join(exposed)} without --auth: ANYONE who can reach this machine can use the UI, "
                   "generate images and read your outputs. Add --auth user:password.")
    if exposed and (args.api or args.nowebui) and not api_auth:
        out.append(f"{' and '.join(exposed)} with the API and no --api-auth/--auth: the REST API is open to anyone.")
    return out


def loud(lines: list[str]) -> None:
    bar = "!" * 78
    print(f"\n{bar}", file=sys.stderr)
    for line in lines:
        print(f"!! WARNING: {line}", file=sys.stderr)
    print(f"{bar}\n", file=sys.stderr, flush=True)


class ServerControl:
    """What /sdapi/v1/server-stop, -kill and -restart (--api-server-stop) do to the uvicorn server that runs the
    app (`server`, set once it exists): stop it, and say with what status the process should exit."""

    def __init__(self):
        self.server = None
        self.exit_code = 0

    @property
    def restartable(self) -> bool:
        """As A1111: only when the one who started the app says it will start it again (SD_WEBUI_RESTART)."""
        return bool(os.environ.get("SD_WEBUI_RESTART"))

    def request(self, how: str) -> None:
        """how: "stop" lets open requests finish (3 s at most), "kill" does not, "restart" stops with exit code 75."""
        if self.server is None:
            return
        log.warning("server %s asked for through the API", how)
        self.exit_code = RESTART_EXIT_CODE if how == "restart" else 0
        self.server.force_exit = how == "kill"
        self.server.should_exit = True


def create_app(args, engine, notice: str | None, ui_auth: Credentials, api_auth: Credentials, extensions=None):
    """The FastAPI app with the API (when asked) and the UI mounted, behind the web guard; also returns the UI
    context (or None). `app.state.server_control` is what the server-* routes act on."""
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware

    from webui.web_guard import GuardConfig, WebGuard

    api = bool(args.api or args.nowebui)
    app = FastAPI(title="Latent Studio", docs_url="/docs" if api else None, redoc_url=None,
                  openapi_url="/openapi.json" if api else None)
    app.state.server_control = control = ServerControl()
    if api:
        try:
            from webui.api import mount_api
        except ImportError as exc:
            raise FlagError(f"the REST API is not available in this build ({exc})") from exc
        # the web guard asks for the API log-in, once
        mount_api(app, engine, extensions=extensions, flags=cmd_flags(args),
                  server_control=control if args.api_server_stop else None)
    else:
        app.add_api_route("/internal/ping", lambda: {}, methods=["GET"], include_in_schema=False)  # as A1111's UI
    mount_extension_routes(app, extensions)
    origins = [o.strip() for o in (getattr(args, "cors_allow_origins", None) or "").split(",") if o.strip()]
    regex = getattr(args, "cors_allow_origins_regex", None)
    # Only the listed origins get CORS answers. Present on the parent app, it also stops Gradio's own CORS
    # middleware, which answers every localhost origin with credentials.
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=regex, allow_credentials=True,
                       allow_methods=["*"], allow_headers=["*"])
    guard = GuardConfig(ui_auth=ui_auth, api_auth=api_auth, outputs_root=engine.settings.outputs_path,
                        cors_origins=origins, cors_regex=regex)
    ctx = None
    if not args.nowebui:
        ctx = _mount_ui(app, engine, notice, args, ui_auth, extensions)
        guard.gradio_app = _gradio_app(app)
        if args.theme:
            app.add_middleware(ThemeRedirect, theme=args.theme)
    app.add_middleware(WebGuard, config=guard)
    if args.api_log:
        app.add_middleware(ApiLog)  # outside the guard: refused requests are logged too
    return app, ctx


class ThemeRedirect:
    """--theme: the UI page opened without a colour scheme is sent to Gradio's `?__theme=` for the chosen one."""

    def __init__(self, app, theme: str):
        self.app, self.theme = app, theme

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/" and b"__theme=" not in scope.get("query_string", b""):
            from starlette.responses import RedirectResponse

            query = scope.get("query_string", b"").decode("latin-1")
            target = f"/?{query + '&' if query else ''}__theme={self.theme}"
            return await RedirectResponse(target, status_code=307)(scope, receive, send)
        await self.app(scope, receive, send)


class ApiLog:
    """--api-log: one log line per API request, as A1111 prints them (status, method, path, client, time)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(("/sdapi/", "/internal/")):
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def watch(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            client = (scope.get("client") or ("unknown",))[0]
            log.info("API %s %s %s %s %.3fs", status[0], scope["method"], scope["path"], client,
                     time.perf_counter() - start)


def _mount_ui(app, engine, notice: str | None, args, ui_auth: Credentials, extensions):
    import gradio as gr

    from webui.ui import CSS, HEAD, THEME, UiContext, build_ui

    # "exposed" forbids installing extensions from URLs; A1111's --enable-insecure-extension-access allows it
    exposed = bool(exposure(args)) and not args.enable_insecure_extension_access
    ctx = UiContext(engine, notice=notice, exposed=exposed, extensions=extensions, local=not exposure(args))
    blocks = build_ui(ctx)
    blocks.queue(default_concurrency_limit=4, max_size=max(64, engine.settings.queue_size * 4))
    settings = engine.settings
    private = [settings.models_root, settings.cache_path, settings.settings_file, settings.embeddings_path,
               *settings.checkpoint_dirs, *settings.lora_search_dirs, *settings.vae_search_dirs]
    gr.mount_gradio_app(
        app, blocks, path="/", auth=ui_auth or None, auth_message="Latent Studio: please log in",
        allowed_paths=[str(settings.outputs_path)], blocked_paths=[str(p) for p in private],
        max_file_size=MAX_UPLOAD, show_error=True, ssr_mode=False, theme=THEME, css=CSS, head=HEAD,
        footer_links=[],  # Gradio's own API page lists nothing useful: the REST API lives at /docs
    )
    return ctx


def _gradio_app(app):
    """The Gradio app mounted at "/" (it holds the log-in tokens)."""
    for route in app.routes:
        if hasattr(getattr(route, "app", None), "tokens"):
            return route.app
    return None


def mount_extension_routes(app, manager) -> None:
    """Routes of active extensions at /ext/<name><path> (the web guard asks for the API log-in there)."""
    if manager is None:
        return
    for ext in manager.extensions.values():
        if not ext.active:
            continue
        for path, endpoint, methods in ext.routes:
            route = f"/ext/{ext.name}/{str(path).lstrip('/')}"
            try:
                app.add_api_route(route, endpoint, methods=list(methods), tags=[f"extension {ext.name}"])
            except Exception as exc:  # noqa: BLE001 - a bad route never takes the app down
                log.error("extension %s: route %s not added: %s", ext.name, route, exc)


def serve(args) -> int:
    """Run the server until Ctrl+C. Returns the exit status."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DISABLE_TELEMETRY", "1")
    from webui.console import ConsoleProgress, quiet_library_noise, startup_line
    from webui.engine import Engine
    from webui.extensions import load_extensions

    try:
        ui_auth, api_auth = credentials_from_args(args)
    except FlagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = bind_host(args)
    if bool(args.tls_keyfile) != bool(args.tls_certfile):
        print("error: HTTPS needs both --tls-keyfile and --tls-certfile", file=sys.stderr)
        return 2
    warnings = security_warnings(args, ui_auth, api_auth)
    if warnings:
        loud(warnings)

    settings, notice = settings_from_args(args)
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    quiet_library_noise()  # before anything loads: warnings that mean nothing to the user stay off the console
    extensions = load_extensions(settings)
    try:
        engine = Engine(settings, hooks=extensions.hooks)
    except Exception as exc:  # noqa: BLE001 - e.g. --device cuda on a machine without CUDA
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ConsoleProgress(engine).install()  # one "Total progress" bar per job on the console
    try:
        if args.vae_path:
            engine.select_vae(str(args.vae_path))
    except Exception as exc:  # noqa: BLE001 - a VAE file that is missing or does not load
        print(f"error: --vae-path: {exc}", file=sys.stderr)
        engine.close()
        return 2
    try:
        app, ctx = create_app(args, engine, notice, ui_auth, api_auth, extensions)
    except FlagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        engine.close()
        return 2
    # the default checkpoint loads in the background; the UI shows progress, the API waits in the queue
    if ctx is not None:
        ctx.load_in_background(None)
    else:
        import threading

        threading.Thread(target=_load_quietly, args=(engine,), daemon=True, name="latent-studio-load").start()

    import uvicorn

    tls = dict(ssl_keyfile=str(args.tls_keyfile), ssl_certfile=str(args.tls_certfile)) if args.tls_certfile else {}
    config = uvicorn.Config(app, host=host, port=args.port, log_level="warning", timeout_graceful_shutdown=3,
                            timeout_keep_alive=args.timeout_keep_alive, **tls)
    server = app.state.server_control.server = uvicorn.Server(config)
    shown = "localhost" if host == "127.0.0.1" else host
    url = f"{'https' if tls else 'http'}://{shown}:{args.port}"
    what = "API" if args.nowebui else "Web UI"
    print(startup_line(engine, url, what, api=bool(args.api and not args.nowebui)), flush=True)
    if args.share:
        _start_share(server, host, args.port)
    try:
        server.run()
    finally:
        engine.close()
    return app.state.server_control.exit_code


def _load_quietly(engine) -> None:
    try:
        engine.load_checkpoint()
    except Exception as exc:  # noqa: BLE001
        log.warning("default checkpoint not loaded: %s", exc)
        print(f"warning: {exc}", file=sys.stderr)


def _start_share(server, host: str, port: int) -> None:
    """Open a Gradio share tunnel once the server is up; offline this fails with a clear message."""
    import threading
    import time

    def run():
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        try:
            import secrets

            from gradio.networking import setup_tunnel

            url = setup_tunnel("127.0.0.1" if host == "0.0.0.0" else host, port, secrets.token_urlsafe(32), None, None)
            print(f"Public share link: {url}  (expires when this process stops)", flush=True)
        except Exception as exc:  # noqa: BLE001 - offline, blocked, frpc missing ...
            print(f"--share: could not create a share link ({exc.__class__.__name__}: {exc}). "
                  f"Still serving locally on port {port}.", file=sys.stderr, flush=True)

    threading.Thread(target=run, name="latent-studio-share", daemon=True).start()
