"""The ESI's own tables and answers: prices, events, last message, Time and Metering reads.

What a meter remembers of the frames that pass through it, so it can answer the devices' own
requests (GetCurrentPrice, GetScheduledPrices, GetScheduledEvents, GetLastMessage, Time and
Metering Read Attributes) as SE_BEHAVIOUR.md §2.1, §3.4, §4.2-4.3 and §5 describe. Plain values
in, field dicts out; ``SimMeter`` encodes them.
"""

from __future__ import annotations

import math
from typing import Any

from simulators.se_time import from_utc, to_utc

UNTIL_CHANGED = 0xFFFF
TIME_STATUS = 0x03  # Master | Synchronized (SE_BEHAVIOUR.md §5 [Inf])
TIME_VALID_FOR_S = 86_400
UNSUPPORTED_ATTRIBUTE = 0x86


class Scheduled:
    """A price, event or message the ESI holds: its fields and absolute unix start/end."""

    __slots__ = ("end", "fields", "ident", "start", "start_now")

    def __init__(self, fields: dict[str, Any], ident: int, now: float) -> None:
        self.fields = fields
        self.ident = ident
        self.start_now = fields["start_time"] == 0
        self.start = now if self.start_now else from_utc(fields["start_time"])
        dur = fields["duration_in_minutes"]
        self.end: float | None = None if dur == UNTIL_CHANGED else self.start + dur * 60

    def current_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def ends_after(self, t: float) -> bool:
        return self.end is None or self.end > t

    def as_sent(self, now: float) -> dict[str, Any]:
        """Fields to re-send: a start-now item goes out as start 0 with the remaining duration."""
        f = dict(self.fields)
        if self.start_now and self.end is not None:
            f["duration_in_minutes"] = max(1, math.ceil((self.end - now) / 60))
        return f


class EsiTables:
    __slots__ = ("events", "message", "prices")

    def __init__(self) -> None:
        self.prices: list[Scheduled] = []
        self.events: list[Scheduled] = []
        self.message: Scheduled | None = None

    # ---------------------------------------------------------------- upstream frames seen
    def record_downstream(self, command: str, fields: dict[str, Any], now: float) -> None:
        if command == "publish_price":
            iid = fields["issuer_event_id"]
            self.prices = [p for p in self.prices if p.ident != iid and p.ends_after(now)]
            self.prices.append(Scheduled(fields, iid, now))
            self.prices.sort(key=lambda p: (p.start, p.ident))
        elif command == "load_control_event":
            iid = fields["issuer_event_id"]
            self.events = [e for e in self.events if e.ident != iid and e.ends_after(now)]
            self.events.append(Scheduled(fields, iid, now))
            self.events.sort(key=lambda e: (e.start, e.ident))
        elif command == "cancel_load_control_event":
            self.events = [e for e in self.events if e.ident != fields["issuer_event_id"]]
        elif command == "cancel_all_load_control_events":
            self.events = []
        elif command in ("display_message", "display_protected_message"):
            self.message = Scheduled(fields, fields["message_id"], now)
        elif command == "cancel_message":
            if self.message is not None and self.message.ident == fields["message_id"]:
                self.message = None
        elif command == "cancel_all_messages":
            self.message = None

    # ---------------------------------------------------------------- answers
    def current_price(self, now: float) -> dict[str, Any] | None:
        for p in self.prices:
            if p.current_at(now):
                f = p.as_sent(now)
                f["current_time"] = to_utc(now)
                return f
        return None

    def scheduled_prices(self, start_time: int, count: int, now: float) -> list[dict[str, Any]]:
        t = now if start_time == 0 else from_utc(start_time)
        stamp = {"current_time": to_utc(now)}
        out = [p.as_sent(now) | stamp for p in self.prices if p.ends_after(t)]
        return out if count == 0 else out[:count]

    def scheduled_events(self, start_time: int, count: int, min_id: int | None,
                         now: float) -> list[dict[str, Any]]:
        """Active + scheduled events ending at/after the start time, (start, id) order."""
        t = now if start_time == 0 else from_utc(start_time)
        out = [e.as_sent(now) for e in self.events
               if e.ends_after(max(t, now)) and (min_id is None or e.ident >= min_id)]
        return out if count == 0 else out[:count]

    def last_message(self, now: float) -> dict[str, Any] | None:
        m = self.message
        if m is None or not m.ends_after(now):
            return None
        return m.as_sent(now)


def time_attributes(now: float) -> dict[int, int]:
    utc = to_utc(now)
    return {0x0000: utc, 0x0001: TIME_STATUS, 0x0002: 0, 0x0008: utc,
            0x0009: utc + TIME_VALID_FOR_S}


def read_records(values: dict[int, Any], attribute_ids: list[int]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for a in attribute_ids:
        if a in values:
            records.append({"attribute_id": a, "status": 0, "value": values[a]})
        else:
            records.append({"attribute_id": a, "status": UNSUPPORTED_ATTRIBUTE})
    return records
