"""Time sources. Lifecycle rules read time through one of these so that tests and demos can move
time forward (30-day invitations, 12-month agreements) without waiting."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Wall-clock time plus an offset that only grows: `advance()` jumps forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward, not by {delta}")
        self.offset += delta


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the last day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
