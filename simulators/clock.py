"""Clocks the simulators run on: a deterministic virtual clock for tests and a real one for demos.

Device and meter code only ever calls ``now()``, ``call_at()`` and ``call_later()``, so the same
code runs hours of events in milliseconds under ``VirtualClock`` and in wall time under
``RealClock``. One heap per clock (not one asyncio task per meter) keeps a 100,000-meter
fleet cheap.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

# 2026-01-01T00:00:00Z: a fixed, readable default start for virtual time.
DEFAULT_VIRTUAL_START = 1_767_225_600.0


class TimerHandle(Protocol):
    """What ``call_at``/``call_later`` return."""

    def cancel(self) -> None: ...


class TimerClock(Protocol):
    """Unix-seconds clock with timers; ``rng`` is the clock's seeded source of randomness."""

    rng: random.Random

    def now(self) -> float: ...

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> TimerHandle: ...

    def call_later(self, delay: float, cb: Callable[..., Any], *args: Any) -> TimerHandle: ...


class VirtualHandle:
    """A timer on the virtual clock."""

    __slots__ = ("args", "cancelled", "cb", "when")

    def __init__(self, when: float, cb: Callable[..., Any], args: tuple[Any, ...]):
        self.when = when
        self.cb = cb
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Deterministic simulated time: nothing happens until ``advance``/``run_until`` is called.

    Callbacks due at the same instant run in the order they were scheduled. A callback scheduled
    in the past (or with a negative delay) runs at the current time, never earlier.
    """

    def __init__(self, start: float = DEFAULT_VIRTUAL_START, seed: int = 0) -> None:
        self._now = float(start)
        # (when, sequence, handle): tuples compare in C, and the sequence keeps ties in the
        # order they were scheduled.
        self._heap: list[tuple[float, int, VirtualHandle]] = []
        self._seq = 0
        self.rng = random.Random(seed)
        self.callbacks_run = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> VirtualHandle:
        self._seq += 1
        when = max(when, self._now)
        handle = VirtualHandle(when, cb, args)
        heapq.heappush(self._heap, (when, self._seq, handle))
        return handle

    def call_later(self, delay: float, cb: Callable[..., Any], *args: Any) -> VirtualHandle:
        return self.call_at(self._now + delay, cb, *args)

    def run_until(self, t: float) -> int:
        """Run every callback due at or before ``t`` in time order; then the clock reads ``t``."""
        ran = 0
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= t:
            when, _, handle = pop(heap)
            if handle.cancelled:
                continue
            self._now = when
            handle.cb(*handle.args)
            ran += 1
        self._now = max(self._now, t)
        self.callbacks_run += ran
        return ran

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, running what falls due. Returns callbacks run."""
        if seconds < 0:
            raise ValueError(f"seconds={seconds}: a clock cannot go backwards (limit >= 0)")
        return self.run_until(self._now + seconds)

    def run_until_idle(self, max_seconds: float = 86_400.0) -> int:
        """Run until no timer is pending or ``max_seconds`` of virtual time have passed."""
        deadline = self._now + max_seconds
        ran = 0
        while self._heap:
            when, _, nxt = self._heap[0]
            if nxt.cancelled:
                heapq.heappop(self._heap)
                continue
            if when > deadline:
                break
            ran += self.run_until(when)
        return ran

    @property
    def pending(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.cancelled)


class RealClock:
    """Wall-clock time on an asyncio loop, for demos and real-time runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, seed: int | None = None):
        self._loop = loop
        self.rng = random.Random(seed)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        # asyncio timers run on the monotonic clock; translate the unix deadline into a delay.
        return self.loop.call_later(max(0.0, when - time.time()), cb, *args)

    def call_later(self, delay: float, cb: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay), cb, *args)
