"""Shared parameter types of the REST API: row ids, ESI IDs, EUI-64s and paging cursors, each with
the bounds the store can hold, so the OpenAPI document states them and out-of-range input is a
typed 422 naming the parameter instead of a driver overflow (HTTP 500).

Row ids are `integer` columns: 32-bit on PostgreSQL, so the real bound of every id is
MAX_ID = 2**31-1 on both backends (gateway/store/cursors.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from gateway.domain.esi_id import ESI_ID_PATTERN
from gateway.store.cursors import MAX_ID as MAX_ID  # noqa: PLC0414 - re-exported

EUI64_PATTERN = r"^[0-9A-Fa-f]{16}$"
_ESI_ID_DOC = "ESI ID: a Texas TDSP prefix and 17 (22 for CenterPoint) digits in all"
_ID_DOC = f"a row id (1..{MAX_ID})"

DbId = Annotated[int, Path(ge=1, le=MAX_ID, description=_ID_DOC)]
"""A row id in the path (agreements, parties, credentials, technicians, requests, webhooks...)."""
QueryDbId = Annotated[int, Query(ge=1, le=MAX_ID, description=_ID_DOC)]
"""A row id as a query filter (e.g. `?party_id=`)."""
BodyDbId = Annotated[int, Field(ge=1, le=MAX_ID, description=_ID_DOC)]
"""A row id inside a request body (e.g. `request_id` of a cancellation)."""

EsiIdPath = Annotated[str, Path(pattern=ESI_ID_PATTERN, description=_ESI_ID_DOC)]
EsiIdQuery = Annotated[str, Query(pattern=ESI_ID_PATTERN, description=_ESI_ID_DOC)]
EsiIdField = Annotated[str, Field(pattern=ESI_ID_PATTERN, description=_ESI_ID_DOC)]
Eui64Path = Annotated[str, Path(pattern=EUI64_PATTERN, description="the device's EUI-64, 16 hex digits")]

# Cursors are row ids or ESI IDs in decimal today; the pattern keeps them opaque but bounded.
CURSOR_MAX_LENGTH = 22
CURSOR_PATTERN = r"^[0-9]*$"
CURSOR_DOC = ("opaque: the previous page's `next_cursor`; empty or omitted: the first page. "
              "A cursor this API did not return is a 422 `invalid_cursor`")
