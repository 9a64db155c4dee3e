"""What a head-end adapter asks the gateway when a head-end reports on a transaction the adapter
does not hold in memory: after a restart, or when another gateway instance submitted it.

A head-end transaction id is the adapter's own, made from the item's key (`transaction_id`:
``<tdsp>:<outbound id>``, ``<tdsp>:prov:<request id>``), so the mapping transaction id <-> key is
fixed and needs no storage. What must be durable and shared is whether the key is an item the
gateway really handed to a route, for which premise, and until when: the gateway has that already,
committed before any route sees the item (the delivery row, the provisioning operation). So the
adapter only asks, through this protocol; `gateway/pipeline/route_items.py` answers it from the
gateway's database (any instance, SQLite or PostgreSQL), and this module's `MemoryItems` serves
tests and the one-off CLI. Dependencies stay one way: the gateway imports this, never the reverse.

Nothing is written per item: the adapter's submit path costs the same as without tracking (a
1,000,000-premise fan-out adds no rows and no statements); a lookup happens only for a notice the
adapter's memory misses, batched with the other misses that arrived meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class KnownItem:
    """An item the gateway handed to a route."""

    key: str
    """The outbound id (a HAN operation) or request id (provisioning) the route was given."""
    esi_id: str
    """The premise it is for: a notice naming another meter is not about this item."""
    expires_at: float | None
    """Unix seconds; None for provisioning (its join window decides)."""


@runtime_checkable
class ItemLookup(Protocol):
    """Answers which keys are items the gateway handed to a route (whichever instance did)."""

    async def known(self, keys: Sequence[str]) -> dict[str, KnownItem]:
        """The items among `keys` (outbound ids and provisioning request ids); keys the gateway
        never handed to a route are absent. One call for many keys: callers batch."""
        ...


class MemoryItems:
    """ItemLookup in memory: for tests of the adapter alone and one-off CLI use."""

    def __init__(self, items: Iterable[KnownItem] = ()) -> None:
        self._items = {i.key: i for i in items}
        self.calls = 0

    def add(self, item: KnownItem) -> None:
        self._items[item.key] = item

    async def known(self, keys: Sequence[str]) -> dict[str, KnownItem]:
        self.calls += 1
        return {k: self._items[k] for k in keys if k in self._items}
