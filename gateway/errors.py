"""Errors a caller can cause, typed, independent of HTTP (the API maps them to problem details)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One bad field: where (`field`, e.g. "premises[0].esi_id"), what (`code`), the value, why,
    and the limit it broke when that is a number (e.g. UTF-8 bytes of a text)."""

    field: str
    code: str
    message: str
    value: Any = None
    limit: Any = None

    def as_dict(self) -> dict[str, Any]:
        out = {"field": self.field, "code": self.code, "message": self.message, "value": self.value}
        if self.limit is not None:  # only errors that have one carry the key
            out["limit"] = self.limit
        return out


class GatewayError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    retry_after: int | None = None
    """Seconds: sent as `Retry-After` (429, and 503s that know when to try again)."""

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None,
                 code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        if code is not None:
            self.code = code


class InvalidRequest(GatewayError):
    status = 422
    code = "invalid_request"
    title = "The request has invalid fields"


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    title = "Conflicts with the current state"


class NotSupported(GatewayError):
    status = 501
    code = "not_supported"
    title = "Not supported yet"


class Unavailable(GatewayError):
    """The gateway is not configured to do this (e.g. no device key for link keys)."""

    status = 503
    code = "not_configured"
    title = "Not configured on this gateway"
