"""How fast and how soon again: the one token bucket and the one retry-delay formula of the project.

Used by the head-end adapters (rate limit per head-end: the one place a head-end is paced,
reconnects, transient retries) and by the gateway (each third party's API rate limit, the durable
retries of HAN deliveries, provisioning operations and webhooks). They live here, in ``ams_adapters``, because
it is the lowest of our packages that both reach: the gateway imports ``ams_adapters``, never the
other way round, and ``zigbee_se`` is the Smart Energy protocol and imports nothing of ours.

Hand-written rather than a library: each is a few lines, and the callers need answers the
libraries keep to themselves. ``tenacity`` and ``stamina`` wrap a call in a retry loop and sleep;
our durable retries store the next attempt's time in the database and need the delay itself.
``aiolimiter`` and ``limits`` answer "allowed or not" (``limits`` has no token bucket, only fixed
and moving windows); the adapter needs "how long until n tokens" to turn a long wait into a
RETRY_LATER, and the API needs the bucket's level for the RateLimit-* headers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def backoff_delay(attempt: int, base_s: float, cap_s: float, *, floor: float = 0.0,
                  rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (0 = the first retry): exponential, capped, jittered.

    ``min(cap, base·2^attempt)`` scaled by a random factor in [floor, 1]: ``floor=0`` is "full
    jitter" (the delays of a fleet retrying one recovering peer spread over the whole step),
    ``floor=0.5`` keeps each retry at least half a step away (durable queues, where a retry sooner
    than planned only costs a database round). Jitter either way, so the retries of one outage do
    not arrive in lock step.
    """
    step: float = min(cap_s, base_s * 2.0 ** min(attempt, 64))  # 2^64 · base is past any cap
    return step * (rng.uniform if rng is not None else random.uniform)(floor, 1.0)


class Backoff:
    """``backoff_delay`` with its settings and its random source bound (full jitter by default)."""

    def __init__(self, base_s: float = 0.05, cap_s: float = 2.0, rng: random.Random | None = None,
                 floor: float = 0.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.floor = floor
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """Delay before retry ``attempt``: uniform in [floor·step, step], step = min(cap, base·2^n)."""
        return backoff_delay(attempt, self.base_s, self.cap_s, floor=self.floor, rng=self._rng)


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up (default: one second's worth)."""

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s={rate_per_s}: must be > 0")
        self.rate = rate_per_s
        self.burst = float(burst) if burst is not None else max(1.0, rate_per_s)
        self._tokens = self.burst
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    @property
    def tokens(self) -> float:
        """Tokens there now (negative while a reservation is being paid off)."""
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are there; never goes into debt."""
        self._refill()
        if self._tokens < n:
            return False
        self._tokens -= n
        return True

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, going into debt if needed; returns how long the caller must wait
        before acting (0 when tokens were there)."""
        self._refill()
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def wait_time(self, n: float = 1.0) -> float:
        """How long until ``n`` tokens are available, without taking them."""
        self._refill()
        return 0.0 if self._tokens >= n else (n - self._tokens) / self.rate

    def until_full(self) -> float:
        """How long until the bucket holds its whole burst again."""
        return self.wait_time(self.burst)

    def give_back(self, n: float = 1.0) -> None:
        self._tokens = min(self.burst, self._tokens + n)
