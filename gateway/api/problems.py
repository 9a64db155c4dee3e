"""RFC 9457 problem details for every error answer, with field-level `errors`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import FieldError, GatewayError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_type(code: str) -> str:
    return f"urn:hangw:problem:{code}"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = headers or {}  # RateLimit-Limit/-Remaining/-Reset


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid bearer token"


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or str(loc[0] if loc else "body")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="hangw"'
        return problem(exc.status, exc.code, exc.title, exc.detail, instance=request.url.path,
                       errors=exc.errors, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(_field_name(tuple(e["loc"])), e["type"], e["msg"], e.get("input"))
            for e in exc.errors()
        ]
        # Inputs may hold non-JSON values (bytes); keep them printable.
        errors = [e if isinstance(e.value, str | int | float | bool | list | dict | None)
                  else FieldError(e.field, e.code, e.message, repr(e.value)) for e in errors]
        return problem(422, "invalid_request", "The request has invalid fields",
                       f"{len(errors)} invalid field(s)", instance=request.url.path,
                       errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "Internal error",
                       "the gateway failed on this request; it is logged",
                       instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail),
                       instance=request.url.path, headers=getattr(exc, "headers", None))
