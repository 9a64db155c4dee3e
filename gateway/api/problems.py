"""RFC 9457 problem details for every error answer, with field-level `errors`.

Every problem's `type` links to its section of docs/errors.md, which the gateway serves at
/docs/errors (rendered; one heading, and so one anchor, per code): `/docs/errors#<code>` by
default, a reference relative to the gateway's own address (RFC 9457 allows a URI reference).
`[server] problem_docs_url` points it elsewhere, e.g. at a published copy of the docs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway.errors import FieldError, GatewayError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


PROBLEM_DOCS_PATH = "/docs/errors"
_docs_url = PROBLEM_DOCS_PATH


def set_problem_docs_url(url: str) -> None:
    """Where problem `type`s link to (process-wide: one gateway per process; tests share the default)."""
    global _docs_url  # noqa: PLW0603 - problem_type() is called from middleware without the app at hand
    _docs_url = url.rstrip("/") or PROBLEM_DOCS_PATH


def problem_type(code: str) -> str:
    """The link to the section of docs/errors.md that explains `code`."""
    return f"{_docs_url}#{code}"


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
    body = problem_body(status, code, title, detail, instance=instance, errors=errors, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(status: int, code: str, title: str, detail: str, *, instance: str | None = None,
                 errors: list[FieldError] | None = None, **extra: Any) -> dict[str, Any]:
    """The problem document itself, for every channel (HTTP answers, MQTT responses)."""
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
    return body


def error_body(exc: GatewayError, instance: str | None) -> dict[str, Any]:
    return problem_body(exc.status, exc.code, exc.title, exc.detail, instance=instance, errors=exc.errors)


def validation_errors(errors: list[Any], body: Any) -> list[FieldError]:
    """Pydantic's errors as field errors named as the caller wrote the body (locations from FastAPI
    start with "body"; a channel that validates itself prefixes it)."""
    found = [FieldError(_field_name(_without_tag(tuple(e["loc"]), body)), e["type"], e["msg"], e.get("input"))
             for e in errors]
    # Inputs may hold non-JSON values (bytes); keep them printable.
    return [e if isinstance(e.value, str | int | float | bool | list | dict | None)
            else FieldError(e.field, e.code, e.message, repr(e.value)) for e in found]


INVALID_FIELDS = (422, "invalid_request", "The request has invalid fields")


def invalid_json_body(why: str, instance: str | None) -> dict[str, Any]:
    return problem_body(422, "invalid_json", "The body is not JSON", why, instance=instance,
                        errors=[FieldError("body", "invalid_json", why, None)])


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


def _without_tag(loc: tuple[Any, ...], body: Any) -> tuple[Any, ...]:
    """A field's place in the body as the caller wrote it: pydantic puts the member of a tagged
    union (a HAN request's `kind`) into the location ("cancel_text", "request_id"); the body has
    no such level, and the gateway's own checks name the field without it."""
    if len(loc) > 2 and loc[0] == "body" and isinstance(body, dict) and body.get("kind") == loc[1]:
        return (loc[0], *loc[2:])
    return loc


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="hangw"'
        return problem(exc.status, exc.code, exc.title, exc.detail, instance=request.url.path,
                       errors=exc.errors, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = [e for e in exc.errors() if e["type"] == "json_invalid"]
        if bad_json:
            where = bad_json[0]["loc"][-1]
            why = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
            return _invalid_json(request, f"{why} at character {where}")
        errors = validation_errors(list(exc.errors()), exc.body)
        return problem(*INVALID_FIELDS,
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
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
            # FastAPI's answer to a JSON body it cannot even decode (e.g. not UTF-8).
            return _invalid_json(request, "the body is not UTF-8 JSON")
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail),
                       instance=request.url.path, headers=headers or None)


BODY_PARSE_ERROR = "There was an error parsing the body"  # fastapi.routing's detail for it


def _invalid_json(request: Request, why: str) -> JSONResponse:
    return JSONResponse(invalid_json_body(why, request.url.path), status_code=422, media_type=PROBLEM_JSON)


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers: Starlette's 405 names only the methods of the first
    route whose path matched, and FastAPI makes one route per method. Each method is put to the
    app's own routes (`matches` gives FULL for path and method), so nested routers count too."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class MeterReadQuotaExceeded(GatewayError):
    """429: the premise's TDSP has used its on-demand reads of the day (nothing was stored)."""

    status = 429
    code = "meter_read_quota_exceeded"
    title = "The TDSP's on-demand reads of the day are used up"

    def __init__(self, detail: str, *, tdsp: str, limit: int, resets_at: str, retry_after: int) -> None:
        super().__init__(detail, errors=[FieldError("tdsp", "meter_read_quota_exceeded", (
            f"{limit} on-demand reads a day for TDSP {tdsp}; the count resets at {resets_at} "
            "(midnight, America/Chicago)"), tdsp, limit)])
        self.retry_after = retry_after
