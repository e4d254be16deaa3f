"""Errors of the API: every failure is a JSON body shaped like A1111's ({error, detail, body, errors}) with a 4xx
status for bad input and 5xx only for real server faults. The handling is attached to our routes only (a custom
APIRoute class), so it never changes how the host app (e.g. the Gradio UI) reports its own errors."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
# Starlette's class, not FastAPI's subclass: FastAPI raises the base class itself when a body cannot be parsed
from starlette.exceptions import HTTPException

from webui.engine import EngineError, NotFoundError, QueueFullError, SamplerError
from webui.settings import SettingLocked

log = logging.getLogger(__name__)

# Engine errors -> HTTP status, the first match wins; any other EngineError is bad input for this request (422).
STATUS = ((NotFoundError, 404), (SamplerError, 404), (SettingLocked, 403), (QueueFullError, 503), (EngineError, 422))


class ApiError(Exception):
    """An error with the HTTP status to answer and a message for the client."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def unsupported(field: str, value: Any, why: str = "") -> ApiError:
    extra = f": {why}" if why else ""
    return ApiError(422, f"{field}={value!r} is not supported{extra}")


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict]) -> str:
    return "; ".join(f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors)


def _clean_errors(errors: list[dict]) -> list[dict]:
    # without "input": it can be a whole base64 image
    return [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error message may quote the client's text, and a lone
    surrogate in it ("\\ud800" in the request) cannot be encoded as UTF-8 but can be written as an escape."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, default=str).encode("ascii")


def error_response(status: int, kind: str, detail: Any, errors: Any = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": kind, "detail": detail, "body": "", "errors": errors if errors is not None else str(detail)}
    return AsciiJSONResponse(status_code=status, content=body, headers=headers)


def _body_error_detail(exc: HTTPException) -> Any:
    """FastAPI answers "There was an error parsing the body" for any body json.loads cannot read; say why."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"body: not valid UTF-8 ({cause.reason} at byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "body: JSON nested too deeply"
    return exc.detail


def to_response(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, type(exc).__name__, exc.detail, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return error_response(exc.status_code, type(exc).__name__, _body_error_detail(exc),
                              headers=getattr(exc, "headers", None))
    if isinstance(exc, RequestValidationError):
        errs = list(exc.errors())
        return error_response(422, type(exc).__name__, validation_message(errs), _clean_errors(errs))
    for kind, status in STATUS:
        if isinstance(exc, kind):
            headers = {"Retry-After": "5"} if status == 503 else None
            return error_response(status, type(exc).__name__, str(exc), headers=headers)
    log.exception("API error: %s %s", request.method, request.url.path)
    return error_response(500, type(exc).__name__, f"{type(exc).__name__}: {exc}")


class ApiRoute(APIRoute):
    """Turns any exception raised while serving one of our routes into an A1111-shaped JSON error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
                return to_response(request, exc)

        return guarded
