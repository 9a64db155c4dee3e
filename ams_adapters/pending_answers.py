"""Requests to a head-end that wait for an asynchronous answer (a notification carrying the
request's transaction id): the HAN inventory query and the on-demand meter read.

Each is registered under its transaction id before it is sent; `take` hands it the notification
that answers it; once it ended (answered, timed out, failed to send) its id is remembered a while,
so that a late or duplicated answer is recognised as the adapter's own and dropped, not treated as
an item's report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ams_adapters.wire.common import NoteKind, Notification

REMEMBERED = 10_000
"""Ended transaction ids kept to recognise late answers (oldest forgotten first)."""


class PendingAnswers:
    def __init__(self, answer_kinds: frozenset[NoteKind]) -> None:
        self.answer_kinds = answer_kinds
        self._waiting: dict[str, asyncio.Future[Notification]] = {}
        self._ended: dict[str, None] = {}  # insertion-ordered

    def take(self, note: Notification) -> bool:
        """True if `note` answers one of these requests (now, or a late duplicate)."""
        fut = self._waiting.get(note.transaction_id)
        if fut is None:
            return note.transaction_id in self._ended
        if not fut.done() and note.kind in self.answer_kinds:
            fut.set_result(note)
        return True

    async def ask(self, transaction_id: str, send: Callable[[], Awaitable[None]],
                  timeout_s: Callable[[], float]) -> Notification:
        """Send (`send()` raises if the head-end did not take it), then wait up to `timeout_s()`
        (asked once it is sent: the sending, its retries included, may have taken a while) for the
        answer; TimeoutError if none came."""
        fut: asyncio.Future[Notification] = asyncio.get_running_loop().create_future()
        self._waiting[transaction_id] = fut
        try:
            await send()
            async with asyncio.timeout(timeout_s()):
                return await fut
        finally:
            self._waiting.pop(transaction_id, None)
            self._ended[transaction_id] = None
            while len(self._ended) > REMEMBERED:
                del self._ended[next(iter(self._ended))]
