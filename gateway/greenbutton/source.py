"""The store's usage rows in the order the ESPI writer consumes them: by premise (in the order
given), channel (consumption, then generation), interval start — read in keyset pages, one page
in memory at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from gateway.store.store import Store
from gateway.store.usage import StoredRead

PAGE = 5000
CHANNEL_ORDER = ("consumption", "generation")  # the writer's order (they sort so)


async def stored_rows(store: Store, esi_ids: Sequence[str], start: datetime, end: datetime, *,
                      channels: Sequence[str] = CHANNEL_ORDER, page: int = PAGE) -> AsyncIterator[StoredRead]:
    """Every stored interval of `esi_ids` starting in [start, end), lazily."""
    for esi_id in esi_ids:
        for channel in channels:
            after: datetime | None = None
            while True:
                rows = await store.usage_channel_page(esi_id, channel, start, end, after=after, limit=page)
                for row in rows:
                    yield row
                if len(rows) < page:
                    break
                after = rows[-1].interval_start
