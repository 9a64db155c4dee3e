"""The robustness layer every head-end adapter shares (not one copy per adapter).

- ``CircuitBreaker``: one per head-end; after ``failure_threshold`` consecutive transport
  failures it opens for ``reset_after_s`` and the adapter answers RETRY_LATER at once instead of
  piling timeouts onto a head-end that is down; then one probe (half open) decides.
- ``InFlight``: a bounded count of transactions the head-end has not finished; full means
  RETRY_LATER, never an unbounded buffer.
- ``Tracker``: idempotency by outbound id and head-end transaction id, and the definite end of
  each accepted item (delivered once, or failed/expired once) whatever the callbacks do.

With ``pacing``'s ``Backoff`` (jittered exponential delays between retries) and ``TokenBucket``
(the profile's rate limit; a caller that would wait longer than it may is told how long instead:
back-pressure into the outbox), which the gateway uses too.

Hand-written rather than a library (pybreaker): each is ~30 lines here, and they must share one
clock and answer "how long until?" for ``retry_after_s``, which libraries hide behind a sleep.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ams_adapters.contract import SubmitResult


class CircuitBreaker:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(self, failure_threshold: int = 5, reset_after_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.opened_count = 0
        # The latest transport failure, for an operator's view (the gateway's /operator page): its
        # reason as the transport gave it and when (wall clock), kept after the breaker closes again.
        self.last_failure: str | None = None
        self.last_failure_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._clock() - self._opened_at >= self.reset_after_s:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self) -> bool:
        """May a request go out now? In half-open state, exactly one probe at a time."""
        state = self.state
        if state == self.CLOSED:
            return True
        if state == self.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def cancel_probe(self) -> None:
        """The half-open probe was granted but nothing was sent: let the next caller probe."""
        self._probing = False

    def retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.05, self.reset_after_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def record_failure(self, reason: str | None = None) -> None:
        self._failures += 1
        self.last_failure = reason or "transport error"
        self.last_failure_at = time.time()
        if self._probing or self._failures >= self.failure_threshold:
            if self._opened_at is None or self._probing:
                self.opened_count += 1
            self._opened_at = self._clock()
            self._probing = False


class InFlight:
    """Transactions the head-end has accepted and not finished (`count`), plus those being sent
    whose answer has not come yet (`sending`: batches go out concurrently, so each claims its room
    before it is sent rather than after it was accepted)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.sending = 0

    def free(self) -> int:
        return max(0, self.limit - self.count - self.sending)

    def claim(self, n: int) -> int:
        """Room for up to `n` items about to be sent: how many may go (count them as sending)."""
        granted = min(n, self.free())
        self.sending += granted
        return granted

    def settle(self, n: int) -> None:
        """`n` claimed items were answered (those accepted `acquire`d) or were not sent after all."""
        self.sending = max(0, self.sending - n)

    def acquire(self) -> None:
        self.count += 1

    def release(self) -> None:
        self.count = max(0, self.count - 1)


@dataclass(slots=True)
class Tracked:
    """One item the head-end was asked to carry."""

    key: str
    """outbound id (HAN operations) or request id (provisioning)."""
    esi_id: str
    transaction_id: str
    expires_at: float | None
    result: SubmitResult | None = None
    """The first definite submit answer (accepted/rejected); returned again on resubmit."""
    terminal: str | None = None
    """'delivered', 'failed' or 'expired' once the item has ended; never changes after."""
    in_flight: bool = False
    extra: dict[str, object] = field(default_factory=dict)


class Tracker:
    """Items by outbound id and by transaction id. Bounded: ended items older than
    ``keep_ended_s`` are forgotten (the outbox holds the durable record)."""

    def __init__(self, keep_ended_s: float = 3600.0) -> None:
        self.by_key: dict[str, Tracked] = {}
        self.by_txid: dict[str, Tracked] = {}
        self.keep_ended_s = keep_ended_s
        self._ended: deque[tuple[float, str]] = deque()
        self.duplicates_ignored = 0
        self.late_ignored = 0

    def get(self, key: str) -> Tracked | None:
        return self.by_key.get(key)

    def by_transaction(self, txid: str) -> Tracked | None:
        return self.by_txid.get(txid)

    def add(self, item: Tracked) -> Tracked:
        self.by_key[item.key] = item
        self.by_txid[item.transaction_id] = item
        return item

    def end(self, item: Tracked, terminal: str, now: float) -> bool:
        """Mark an item ended; False (and counted) if it had already ended."""
        if item.terminal is not None:
            if terminal == "expired" or item.terminal == "expired":
                self.late_ignored += 1
            else:
                self.duplicates_ignored += 1
            return False
        item.terminal = terminal
        self._ended.append((now, item.key))
        self._forget_old(now)
        return True

    def _forget_old(self, now: float) -> None:
        cut = now - self.keep_ended_s
        while self._ended and self._ended[0][0] < cut:
            _, key = self._ended.popleft()
            old = self.by_key.pop(key, None)
            if old is not None:
                self.by_txid.pop(old.transaction_id, None)
