"""The guard in front of the whole web app (UI, REST API, docs, extension routes), as one ASGI middleware:

* log-in on every route that is not a static asset or the login page (Gradio leaves some of its own routes open),
  with failed attempts throttled per client address;
* state-changing requests from a foreign page are refused (Origin / Referer), and so are non-JSON bodies sent to
  the JSON API (a cross-site HTML form can only send form or text bodies);
* bodies over the size limit get a 413 before they are read;
* the file route serves only images under the outputs folder (and Gradio's own uploads and cache).

Written by hand because it has to see every request before both FastAPI and the mounted Gradio app; each check
is a few lines on top of Starlette's request/response types.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from webui.auth import Credentials, LoginThrottle, basic_credentials, credentials_match

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API_PREFIXES = ("/sdapi/", "/internal/", "/docs", "/openapi.json", "/ext/")
# What the login page needs before anyone has logged in. /config stays with Gradio: it answers 401 with the
# message the login page shows.
PUBLIC_PATHS = ("/", "/login", "/login/", "/logout", "/logout/", "/config", "/config/", "/favicon.ico",
                "/manifest.json", "/robots.txt", "/theme.css")
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon", "/gradio_api/assets/", "/gradio_api/static/")
FILE_ROUTES = ("/gradio_api/file=", "/file=")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class GuardConfig:
    ui_auth: Credentials = field(default_factory=list)
    api_auth: Credentials = field(default_factory=list)
    outputs_root: Path | None = None
    cors_origins: list[str] = field(default_factory=list)
    cors_regex: str | None = None
    max_body: int = 256 * 1024 * 1024
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    gradio_app: object = None  # the mounted Gradio App: its log-in tokens let UI requests through

    def origin_allowed(self, origin: str, host: str) -> bool:
        if urlsplit(origin).netloc.lower() == host.lower() and host:
            return True
        return origin in self.cors_origins or bool(self.cors_regex and re.fullmatch(self.cors_regex, origin))


class WebGuard:
    def __init__(self, app, config: GuardConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await _answer(scope, receive, send, *refusal)
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == "/login":
            return await self._login(scope, receive, send)
        await self._limited(scope, receive, send)

    async def _limited(self, scope, receive, send):
        """A body sent without a length (chunked) is counted as it arrives: 413 once it passes the limit."""
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.config.max_body:
                raise _TooLarge
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive if scope["type"] == "http" else receive, watching_send)
        except _TooLarge:
            if not started:
                await _answer(scope, receive, send, 413, f"Request body too large (the limit is "
                                                         f"{self.config.max_body} bytes)", {})

    def _refusal(self, scope) -> tuple[int, str, dict] | None:
        """(status, message, headers) when the request must not go on, else None."""
        headers = Headers(scope=scope)
        path, method = scope["path"], scope.get("method", "GET")
        for check in (self._foreign_origin, self._body, self._credentials, self._file):
            refusal = check(scope, headers, path, method)
            if refusal is not None:
                return refusal
        return None

    def _foreign_origin(self, scope, headers, path, method):
        if method in SAFE_METHODS and scope["type"] == "http":
            return None
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        origin = headers.get("origin")
        if origin is None and headers.get("referer"):
            parts = urlsplit(headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin is not None and not self.config.origin_allowed(origin, host):
            return 403, f"Cross-origin request refused (origin {origin}); allow it with --cors-allow-origins", {}
        return None

    def _body(self, scope, headers, path, method):
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.config.max_body:
            return 413, f"Request body too large ({int(length)} bytes; the limit is {self.config.max_body})", {}
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if path.startswith("/sdapi/") and method not in SAFE_METHODS and kind and not _is_json(kind):
            return 415, f"Expected a JSON body (Content-Type: application/json), got {kind}", {}
        return None

    def _credentials(self, scope, headers, path, method):
        api = path.startswith(API_PREFIXES)
        credentials = self.config.api_auth if api else self.config.ui_auth
        if not credentials or (not api and (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES))):
            return None
        if not api and self._logged_in(headers):
            return None
        client = _client(scope)
        given = basic_credentials(headers.get("authorization"))
        if given is not None:
            wait = self.config.throttle.retry_after(client)
            if wait:
                return 429, "Too many failed log-ins; try again later", {"Retry-After": str(wait)}
            if credentials_match(credentials, *given):
                self.config.throttle.succeeded(client)
                return None
            self.config.throttle.failed(client)
        return 401, "Incorrect username or password" if given else "Not authenticated", \
            {"WWW-Authenticate": "Basic"}

    def _logged_in(self, headers) -> bool:
        """A Gradio log-in cookie that Gradio itself issued."""
        app = self.config.gradio_app
        if app is None:
            return False
        cookies = cookie_parser(headers.get("cookie", ""))
        for name in (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}"):
            if cookies.get(name) in app.tokens:
                return True
        return False

    def _file(self, scope, headers, path, method):
        root = self.config.outputs_root
        prefix = next((p for p in FILE_ROUTES if path.startswith(p)), None)
        if prefix is None or root is None:
            return None
        target = unquote(path[len(prefix):])
        if "://" in target:
            return None  # a URL: Gradio only proxies its own hosts
        real, root = Path(target).resolve(), root.resolve()
        if (real == root or root in real.parents) and real.suffix.lower() not in IMAGE_SUFFIXES:
            return 403, "Only images are served from the outputs folder", {}
        return None

    async def _login(self, scope, receive, send):
        """Gradio's log-in form, throttled: its answer (200 or 400) counts as a success or a failure."""
        client = _client(scope)
        wait = self.config.throttle.retry_after(client)
        if wait:
            return await _answer(scope, receive, send, 429, "Too many failed log-ins; try again later",
                                 {"Retry-After": str(wait)})

        async def watch(message):
            if message["type"] == "http.response.start":
                ok = message["status"] < 300
                (self.config.throttle.succeeded if ok else self.config.throttle.failed)(client)
            await send(message)

        await self.app(scope, receive, watch)


class _TooLarge(Exception):
    pass


def _is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def _client(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _answer(scope, receive, send, status: int, message: str, headers: dict) -> None:
    """An A1111-shaped JSON error (or a refused WebSocket)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": "Refused", "detail": message, "body": "", "errors": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
