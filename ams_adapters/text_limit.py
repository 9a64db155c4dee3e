"""How much DisplayMessage text a premise takes: one rule, in one unit, checked in one place (the
gateway's API, before a request is accepted: `over_text_limit`).

The unit is the UTF-8 byte. The SE Messaging `Message` is a ZCL character string whose length
prefix counts octets (UTF-8 text), a ZCL frame's budget is in bytes, and a meter stores the bytes
it is sent; a limit in characters says nothing about any of these (57 characters of "€" are 171
bytes, three frames' worth). Characters would need a conversion that depends on the text; bytes
compare directly with every limit on the way.

A premise's limit is the smaller of its route's own (`RouteCapabilities.max_text_bytes`: what the
head-end or its meters take) and the room the SE frame leaves for text at the meter's SE version
within the route's single-frame budget (`RouteCapabilities.max_frame_size`; none when the route's
meters fragment long frames, then only the ZCL string's 254 bytes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from ams_adapters.contract import RouteCapabilities
from zigbee_se import DEFAULT_MAX_FRAME_SIZE, SEVersion, max_text_bytes

ZCL_STRING_BYTES = 254
"""The longest ZCL character string (its length byte 0xFF means "invalid")."""


@dataclass(frozen=True, slots=True)
class TextLimit:
    """The text limit of premises on one route at one SE version."""

    limit: int
    """UTF-8 bytes."""
    se_version: SEVersion
    route: str | None
    """The route's name; None for premises no route reaches yet (the SE single-frame budget applies)."""
    frame_budget: int
    """Bytes of text the SE frame leaves room for (254 when the route's frames may be fragmented)."""
    route_limit: int | None
    """The route's own limit, when it has one."""

    def describe(self) -> str:
        """Whose limit it is, e.g. "for SE 1.1 meters on route tnmp (the route's own limit)"."""
        where = f"on route {self.route}" if self.route else "that no route reaches yet"
        own = self.route_limit is not None and self.route_limit <= self.frame_budget
        why = "the route's own limit" if own else "the SE single-frame budget"
        return f"for SE {self.se_version} meters {where} ({why})"


@functools.lru_cache(maxsize=64)
def _frame_budget(max_frame_size: int | None, version: SEVersion) -> int:
    if max_frame_size is None:
        return ZCL_STRING_BYTES
    return max_text_bytes(se_version=version, max_frame_size=max_frame_size)


def text_limit(route: RouteCapabilities | None, se_version: SEVersion | str) -> TextLimit:
    """The text limit of a premise reached by `route` (None: no route reaches it yet, the SE
    single-frame budget of 73 bytes applies) with a meter of `se_version`."""
    version = SEVersion.parse(se_version)
    frame_size = DEFAULT_MAX_FRAME_SIZE if route is None else route.max_frame_size
    budget = _frame_budget(frame_size, version)
    own = None if route is None else route.max_text_bytes
    limit = budget if own is None else min(own, budget)
    return TextLimit(limit, version, None if route is None else route.name, budget, own)


def text_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def over_text_limit(text: str, limits: Iterable[TextLimit]) -> tuple[int, TextLimit] | None:
    """The check: None when `text` fits every limit, else its size in UTF-8 bytes and the
    smallest limit (the one that names what to shorten it to)."""
    tightest = min(limits, key=lambda t: t.limit, default=None)
    if tightest is None:
        return None
    size = text_bytes(text)
    return (size, tightest) if size > tightest.limit else None
