"""Token bucket per third party: a steady rate with a burst allowance; never a silent drop.

Each answer carries the IETF draft's RateLimit-Limit (the burst), RateLimit-Remaining (whole tokens
left) and RateLimit-Reset (seconds until the bucket is full again); a 429 adds Retry-After.

Two kinds of buckets, one answer (`Outcome`):

- `TokenBuckets`: the project's one ``ams_adapters.pacing.TokenBucket`` per party, in this process's
  memory. The default on SQLite, where one gateway process is the whole deployment.
- `SharedBuckets`: one row per party in the database (gateway/store/rate_limits.py, GCRA updated by
  one atomic upsert), so every gateway instance on one PostgreSQL spends from the same bucket. The
  default on PostgreSQL. The ``limits`` library was the other candidate: its storages are memory,
  Redis/Valkey, Memcached, MongoDB and etcd — none is PostgreSQL, and a broker-less deployment
  should not need a Redis for this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ams_adapters.pacing import TokenBucket
from gateway.store import rate_limits
from gateway.store.store import Store


@dataclass(frozen=True)
class Outcome:
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None  # None: allowed


class Buckets(Protocol):
    rate: float
    burst: int

    async def take(self, key: int) -> Outcome: ...


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._buckets: dict[int, TokenBucket] = {}

    async def take(self, key: int) -> Outcome:
        """Spend one token of `key`'s bucket, or say how long to wait (≥ 1 s) for one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        retry_after = None if bucket.try_take() else max(1, math.ceil(bucket.wait_time(1)))
        return Outcome(self.burst, int(bucket.tokens), math.ceil(bucket.until_full()), retry_after)


class SharedBuckets:
    """The same buckets kept in the database, shared by every instance on it."""

    def __init__(self, store: Store, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._store = store

    async def take(self, key: int) -> Outcome:
        taken = await rate_limits.take(self._store.engine, key, self.rate, self.burst)
        interval = 1.0 / self.rate
        # The bucket holds burst - ahead/interval requests now (ahead: how far its tat is past now).
        remaining = max(0, math.floor(self.burst - taken.ahead / interval + 1e-6))
        retry_after = None
        if not taken.allowed:
            # One more fits once tat - now has come down to (burst - 1) intervals.
            retry_after = max(1, math.ceil(taken.ahead - (self.burst - 1) * interval))
        return Outcome(self.burst, remaining, math.ceil(taken.ahead), retry_after)


def make_buckets(store: Store, rate_per_second: float, burst: int, shared: bool | None) -> Buckets:
    """Shared buckets when asked, or by default on PostgreSQL (where several instances may serve
    one party); this process's buckets otherwise."""
    if shared is None:
        shared = not store.single_writer  # PostgreSQL
    if shared:
        return SharedBuckets(store, rate_per_second, burst)
    return TokenBuckets(rate_per_second, burst)
