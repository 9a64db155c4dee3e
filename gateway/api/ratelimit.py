"""Token bucket per third party: a steady rate with a burst allowance; never a silent drop.

Each answer carries the IETF draft's RateLimit-Limit (the burst), RateLimit-Remaining (whole tokens
left) and RateLimit-Reset (seconds until the bucket is full again); a 429 adds Retry-After.

The bucket is the project's one ``ams_adapters.pacing.TokenBucket``; this module keeps one per
party and turns its level into those headers. The buckets are in this process's memory: limits
shared across gateway instances need a shared store (the ``limits`` library's storages would fit
behind ``take``'s ``Outcome``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ams_adapters.pacing import TokenBucket


@dataclass(frozen=True)
class Outcome:
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None  # None: allowed


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._buckets: dict[int, TokenBucket] = {}

    def take(self, key: int) -> Outcome:
        """Spend one token of `key`'s bucket, or say how long to wait (≥ 1 s) for one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        retry_after = None if bucket.try_take() else max(1, math.ceil(bucket.wait_time(1)))
        return Outcome(self.burst, int(bucket.tokens), math.ceil(bucket.until_full()), retry_after)
