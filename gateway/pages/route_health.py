"""What the operator's page shows of each route (the dispatcher's RouteSet) beside what the store
shows: a head-end adapter's circuit breaker (state, consecutive failures, times opened, the latest
transport failure and when), its transactions in flight, and which ESI ID prefixes it serves.

Read from this instance's own routes: with several instances, each has its own adapters and
breakers, so the page shows the breaker of the instance that served it (the queue depth and
failures, from the store, are everyone's). A route that is not a head-end adapter (the simulated
route, the local radio) has no breaker: the page says so rather than showing a state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import Route
from gateway.pipeline.dispatcher import RouteSet


@dataclass(frozen=True)
class RouteHealth:
    name: str  # the TDSP (a head-end adapter's profile) or the route's kind
    prefixes: list[str]
    breaker: str | None  # closed, open, half_open; None: the route has no breaker
    consecutive_failures: int
    opened_count: int
    retry_after_s: float | None  # while open: seconds until the next probe
    last_failure: str | None
    last_failure_at: datetime | None
    in_flight: int | None


def _health(route: Route, prefixes: list[str]) -> RouteHealth:
    if isinstance(route, HeadEndAdapter):
        b = route.breaker
        state = b.state
        return RouteHealth(route.profile.tdsp, prefixes, state, b.consecutive_failures, b.opened_count,
                           round(b.retry_after(), 1) if state == b.OPEN else None, b.last_failure,
                           datetime.fromtimestamp(b.last_failure_at, UTC) if b.last_failure_at else None,
                           route.in_flight.count + route.in_flight.sending)
    return RouteHealth(type(route).__name__, prefixes, None, 0, 0, None, None, None, None)


def route_health(routes: RouteSet) -> list[RouteHealth]:
    """One entry per distinct route, with the prefixes (or "default", or single ESI IDs) it serves."""
    served: dict[int, tuple[Route, list[str]]] = {}
    for key, route in [*routes.by_prefix.items(), *routes.by_esi.items()]:
        if route is not None:
            served.setdefault(id(route), (route, []))[1].append(key)
    if routes.default is not None:
        served.setdefault(id(routes.default), (routes.default, []))[1].append("default")
    return sorted((_health(route, sorted(keys)) for route, keys in served.values()), key=lambda h: h.name)
