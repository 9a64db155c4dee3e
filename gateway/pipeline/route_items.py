"""The gateway's answer to a head-end adapter's "is this item ours?" (`ams_adapters.tracking`):
from the delivery rows and provisioning operations in the database, so a head-end's notice about
any item the gateway handed to a route is applied by whichever instance receives it — after a
restart, or when the instance that submitted it is gone.

The adapter's transaction ids are made from these keys (`hgw-<delivery id>`, `hgw-prov-<op id>`);
the rows exist, committed, before any route sees the item, so no write is needed per item.
"""

from __future__ import annotations

from collections.abc import Sequence

from ams_adapters.tracking import KnownItem
from gateway.pipeline import delivery_queue
from gateway.store import deliveries
from gateway.store import provisioning as prov
from gateway.store.store import Store


class StoredItems:
    """ItemLookup on the gateway's store (SQLite or PostgreSQL, shared by every instance)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def known(self, keys: Sequence[str]) -> dict[str, KnownItem]:
        by_delivery: dict[int, str] = {}
        by_operation: dict[int, str] = {}
        for key in keys:
            operation = prov.operation_of(key)
            if operation is not None:
                by_operation[operation] = key
                continue
            delivery = delivery_queue.delivery_of(key)
            if delivery is not None:
                by_delivery[delivery] = key
        found: dict[str, KnownItem] = {}
        if by_delivery:
            for row in await deliveries.handed_items(self.store.engine, sorted(by_delivery)):
                key = by_delivery[row.id]
                found[key] = KnownItem(key, row.esi_id, deliveries.expires_unix(row.expires_at))
        if by_operation:
            for row in await prov.handed_operations(self.store, sorted(by_operation)):
                key = by_operation[row.id]
                found[key] = KnownItem(key, row.esi_id, None)
        return found
