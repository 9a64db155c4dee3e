"""Token bucket per third party: a steady rate with a burst allowance; never a silent drop.

Each answer carries the IETF draft's RateLimit-Limit (the burst), RateLimit-Remaining (whole tokens
left) and RateLimit-Reset (seconds until the bucket is full again); a 429 adds Retry-After.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


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
        self._buckets: dict[int, _Bucket] = {}

    def take(self, key: int) -> Outcome:
        """Spend one token of `key`'s bucket, or say how long to wait (≥ 1 s) for one."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        retry_after = None
        if bucket.tokens >= 1:
            bucket.tokens -= 1
        else:
            retry_after = max(1, math.ceil((1 - bucket.tokens) / self.rate))
        reset = math.ceil((self.burst - bucket.tokens) / self.rate) if self.rate > 0 else 0
        return Outcome(self.burst, int(bucket.tokens), reset, retry_after)
