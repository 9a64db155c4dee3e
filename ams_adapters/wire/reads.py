"""Meter reads as every head-end protocol carries them (issue 16): a page of 15-minute interval
values, and an on-demand register read. Plain data shared by the adapters' transports and the
head-end emulators (the wire layer is pure); each protocol's encoding is in its own module
(multispeak.py, cim.py, binary.py), and the adapter checks what a head-end answered
(`check_page`) before any of it becomes a `UsageRead`.

Channels and qualities are spelled as `ams_adapters.usage.Channel` / `Quality` spell them
(tests/test_names.py would catch a second definition; the values are compared in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ams_adapters.wire.common import WireError

INTERVAL_S = 900
CHANNELS = ("consumption", "generation")
QUALITIES = ("actual", "estimated", "missing")
MAX_INTERVAL_WH = 1_000_000
"""The most one 15-minute interval may hold: 1 MWh is 4 MW for a quarter hour, far beyond any
premise on a residential or small-commercial meter. A value above it is a head-end's garble."""
MAX_REGISTER_WH = 10**12
"""A register beyond a billion kWh is not a meter's."""
DEFAULT_PAGE_INTERVALS = 96
"""Interval starts a head-end answers per call unless told fewer: one day."""
MAX_PAGE_INTERVALS = 2880
"""The most interval starts one call may ask for (30 days)."""


@dataclass(frozen=True, slots=True)
class IntervalValue:
    """One channel's value for one interval, as the head-end sent it (checked by `check_page`)."""

    start: int
    """Unix seconds (UTC) at which the interval starts."""
    length_s: int
    channel: str
    value_wh: int
    quality: str


@dataclass(frozen=True, slots=True)
class IntervalPage:
    """A head-end's answer to one interval read of [start, end): its values, and where the next
    call starts when it stopped at its page limit (None: the period is answered up to `end`, or up
    to the last interval the meter has ended)."""

    esi_id: str
    values: tuple[IntervalValue, ...]
    next_start: int | None = None


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """An on-demand register read: the meter's registers at `read_at`."""

    read_at: int
    delivered_wh: int
    received_wh: int | None = None
    demand_w: int | None = None


def kwh(wh: int) -> str:
    """Wh as kWh with three decimals (exact)."""
    return str(Decimal(wh).scaleb(-3))


def wh_of(text: str | None, name: str) -> int:
    """kWh text -> whole Wh; WireError unless it is a number of whole Wh."""
    try:
        value = Decimal(text or "") * 1000
    except InvalidOperation:
        raise WireError(name, text, "a number of kWh") from None
    if value != value.to_integral_value():
        raise WireError(name, text, "kWh with at most 3 decimals (whole Wh)")
    return int(value)


class ReadRefused(Exception):
    """The head-end answered a read with a refusal or an error it reported itself (no such meter,
    meter unreachable, busy); `retry_after_s` when it is worth asking again."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None, permanent: bool = False,
                 busy: bool = False) -> None:
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.permanent = permanent
        self.busy = busy
        super().__init__(reason)


def check_page(page: IntervalPage, esi_id: str, start: int, end: int, limit: int) -> None:
    """Raise `WireError` (field, value, limit) unless `page` is a sound answer to a read of
    [start, end) for `esi_id` of at most `limit` interval starts."""
    if page.esi_id != esi_id:
        raise WireError("meterID", page.esi_id, f"the meter asked for ({esi_id})")
    starts: set[int] = set()
    seen: set[tuple[int, str]] = set()
    for v in page.values:
        if v.length_s != INTERVAL_S:
            raise WireError("intervalLength", v.length_s, f"{INTERVAL_S} seconds")
        if not start <= v.start < end or v.start % INTERVAL_S:
            raise WireError("intervalStart", v.start, f"a 15-minute boundary in [{start}, {end})")
        if v.channel not in CHANNELS:
            raise WireError("channel", v.channel, f"one of {CHANNELS}")
        if v.quality not in QUALITIES:
            raise WireError("quality", v.quality, f"one of {QUALITIES}")
        if not 0 <= v.value_wh <= MAX_INTERVAL_WH:
            raise WireError("value", v.value_wh, f"0..{MAX_INTERVAL_WH} Wh in 15 minutes")
        if (v.start, v.channel) in seen:
            raise WireError("intervalStart", v.start, f"one {v.channel} value per interval")
        seen.add((v.start, v.channel))
        starts.add(v.start)
    if len(starts) > limit:
        raise WireError("intervals", len(starts), f"at most {limit} interval starts per answer (asked)")
    if page.next_start is not None:
        last = max(starts, default=start)
        if not last < page.next_start < end or page.next_start % INTERVAL_S:
            raise WireError("lastSent/next start", page.next_start,
                            f"a 15-minute boundary after the last value sent ({last}) and before {end}")


def check_register(value: RegisterValue) -> None:
    """Raise `WireError` unless the registers are in range."""
    for name, wh in (("delivered", value.delivered_wh), ("received", value.received_wh)):
        if wh is not None and not 0 <= wh <= MAX_REGISTER_WH:
            raise WireError(f"{name} register", wh, f"0..{MAX_REGISTER_WH} Wh")
    if value.demand_w is not None and not 0 <= value.demand_w <= 4 * MAX_INTERVAL_WH:
        raise WireError("demand", value.demand_w, f"0..{4 * MAX_INTERVAL_WH} W")
