"""Keyset paging cursors: opaque strings for callers that decode to bounded row ids here.

Row ids are `integer` columns (sa.Integer): 32-bit on PostgreSQL, so the real bound of every id
is 2**31-1 on both backends. A cursor past it, or one this API never returned, is a typed 422
naming `cursor` rather than a driver overflow (an HTTP 500 before issue 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import FieldError, InvalidRequest
from gateway.store.ownership import MAX_ROW_ID

MAX_ID = MAX_ROW_ID
"""The largest row id: PostgreSQL `integer` (int4); one bound for the policy and the API."""

T = TypeVar("T")


def id_cursor(cursor: str | None) -> int:
    """The last row id a page ended on, from its `next_cursor` (None or "": the first page)."""
    if not cursor:
        return 0
    if cursor.isascii() and cursor.isdigit() and int(cursor) <= MAX_ID:
        return int(cursor)
    raise InvalidRequest(f"cursor {cursor[:40]!r} is not one this API returned", errors=[
        FieldError("cursor", "invalid_cursor", "pass a next_cursor value from a previous page "
                   "(or none for the first page)", cursor[:40])])


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paged listing; `next_cursor` None on the last page."""

    items: list[T]
    next_cursor: str | None
