"""Which text limits a text request must fit: one per (route, SE version) among its targets
(the rule itself, in UTF-8 bytes, is `ams_adapters.text_limit`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ams_adapters.contract import Route, RouteCapabilities
from ams_adapters.text_limit import TextLimit, text_limit
from gateway.pipeline.delivery_queue import DeliveryTarget


class Routes(Protocol):
    """Which route reaches a premise (the dispatcher's RouteSet): what acceptance asks of it."""

    default: Route | None

    def for_premise(self, esi_id: str) -> Route | None: ...

    def all(self) -> list[Route]: ...


def text_limits(routes: Routes | None, targets: Sequence[DeliveryTarget], versions: set[str], *,
                fanout: bool) -> set[TextLimit]:
    """Named premises: their routes' limits at their SE versions. A fan-out's premises are not
    known yet: every route's limit at every SE version, and the SE single-frame budget too when
    some premises may have no route (no default route). Without `routes`, as for a premise no
    route reaches yet, the SE single-frame budget applies."""
    if routes is None:
        return {text_limit(None, v) for v in versions}
    if fanout:
        caps: list[RouteCapabilities | None] = [r.capabilities for r in routes.all()]
        if routes.default is None:
            caps.append(None)
        return {text_limit(c, v) for c in caps for v in versions}
    found: dict[tuple[int, str], TextLimit] = {}
    for t in targets:
        route = routes.for_premise(t.esi_id)
        key = (id(route), t.se_version)
        if key not in found:
            found[key] = text_limit(None if route is None else route.capabilities, t.se_version)
    return set(found.values())
