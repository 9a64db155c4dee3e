"""Simulated usage: a premise's 15-minute interval consumption (and generation where it has solar),
daily and monthly register reads — pure functions of the premise, a seed and time.

Weather-free but shaped: a seasonal air-conditioner share (none in winter, most of the load on a July
afternoon), a daily shape (morning and evening peaks on the base load), solar generation with cloud
noise, and ±8 % noise per interval. Nothing here keeps state or reads a clock: the same premise,
seed and period give the same reads in every run, so a test or a benchmark can ask for any period
again (a gap refetched is identical to what was lost).

**Load control.** A `Curtailment` — what a load-control event did to the premise's cooling while a
device ran it (`SimMeter.curtailments()` derives them from its devices' loads) — scales the air
conditioner's draw for the event's duration; after it, the deferred cooling comes back: a share
(`SNAPBACK_SHARE`) of the energy the event saved is drawn in the hour after the event, most of it at
once (ENERGY_DATA.md §4: snap-back, as equipment recovers its set point).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

INTERVAL_S = 900
LOCAL = ZoneInfo("America/Chicago")  # the premises are in Texas: days are cut in Central Time
SNAPBACK_S = 3600.0  # the deferred cooling comes back over the hour after an event
SNAPBACK_SHARE = 0.6  # of the energy an event deferred
NOISE = 0.08
ESTIMATED_PER_MILLION = 2000  # about 1 interval in 500 is an estimate (a meter's gap filled by the head-end)
# The register's zero: reads count from the first local day of 2025 (about 24 months of history
# before the end of 2026, as SMT keeps).
REGISTER_EPOCH = date(2025, 1, 1)

CONSUMPTION = "consumption"
GENERATION = "generation"
ACTUAL = "actual"
ESTIMATED = "estimated"

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finalizer: a cheap, well-spread integer hash (the per-interval noise)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _unit(key: int, t: int, salt: int) -> float:
    """A uniform number in [0, 1) fixed by the premise's key, the time and a salt."""
    return _mix(key ^ (t * 0x100000001B3) ^ (salt << 56)) / 2.0**64


@dataclass(frozen=True)
class LoadShape:
    """One premise's load: fixed by its ESI ID and the seed."""

    esi_id: str
    key: int  # the premise's noise key
    base_w: float  # always-on and appliance load before the daily shape
    ac_kw: float  # the air conditioner's full draw
    solar_kw: float  # 0: no solar
    register_start_wh: int  # the register at REGISTER_EPOCH


def load_shape(esi_id: str, seed: int = 0) -> LoadShape:
    digest = hashlib.blake2b(f"{seed}:{esi_id}".encode(), digest_size=16).digest()
    a, b, c, d = (int.from_bytes(digest[i:i + 4], "big") / 2.0**32 for i in range(0, 16, 4))
    solar = 4.0 + 4.0 * d if c < 0.3 else 0.0  # about 3 premises in 10 have solar
    return LoadShape(esi_id, int.from_bytes(digest[8:], "big"), base_w=250.0 + 350.0 * a,
                     ac_kw=2.0 + 2.5 * b, solar_kw=round(solar, 2),
                     register_start_wh=int.from_bytes(digest[:3], "big") * 10)


@dataclass(frozen=True)
class Curtailment:
    """During [start, end) the air conditioner drew `ac_factor` of its normal draw (0: off)."""

    start: float
    end: float
    ac_factor: float


@dataclass(frozen=True, slots=True)
class IntervalRead:
    start: int  # unix seconds, UTC
    length_s: int
    channel: str  # CONSUMPTION | GENERATION
    value_wh: int
    quality: str  # ACTUAL | ESTIMATED


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """A register read at local midnight: `day`'s start and end readings and the energy between."""

    day: date
    start_wh: int
    end_wh: int

    @property
    def wh(self) -> int:
        return self.end_wh - self.start_wh


@functools.lru_cache(maxsize=4096)
def _local_hour_and_day(hour_start: int) -> tuple[float, int]:
    """(local hour of day, day of year) at the start of a UTC hour: one zoneinfo call per hour."""
    local = datetime.fromtimestamp(hour_start, LOCAL)
    return local.hour + local.minute / 60.0, local.timetuple().tm_yday


def _season(day_of_year: int, peak_day: int) -> float:
    return (1.0 + math.cos(2 * math.pi * (day_of_year - peak_day) / 365.0)) / 2.0


def _bump(h: float, centre: float, width: float) -> float:
    return math.exp(-(((h - centre) / width) ** 2))


def ac_w(shape: LoadShape, t: float) -> float:
    """The air conditioner's normal draw at `t` (watts): seasonal (peak in July) and daily (peak
    mid-afternoon, a quarter at night)."""
    hour_start = int(t) - int(t) % 3600
    h0, doy = _local_hour_and_day(hour_start)
    h = h0 + (t - hour_start) / 3600.0
    season = _season(doy, 200) ** 2
    daily = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (h - 9.0) / 14.0))
    return shape.ac_kw * 1000.0 * season * daily


def _other_w(shape: LoadShape, t: float) -> float:
    hour_start = int(t) - int(t) % 3600
    h0, doy = _local_hour_and_day(hour_start)
    h = h0 + (t - hour_start) / 3600.0
    winter = 1.0 - _season(doy, 200)
    return shape.base_w * (1.0 + 0.6 * _bump(h, 7.5, 1.2) + 1.0 * _bump(h, 19.0, 2.0)) * (1.0 + 0.3 * winter)


def _solar_w(shape: LoadShape, t: float, key: int) -> float:
    if not shape.solar_kw:
        return 0.0
    hour_start = int(t) - int(t) % 3600
    h0, doy = _local_hour_and_day(hour_start)
    h = h0 + (t - hour_start) / 3600.0
    sun = math.sin(math.pi * (h - 6.5) / 13.0)
    if sun <= 0:
        return 0.0
    cloud = 1.0 - 0.5 * _unit(key, int(t) // INTERVAL_S, 3) ** 3
    return shape.solar_kw * 1000.0 * sun * (0.75 + 0.25 * _season(doy, 172)) * cloud


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _snapback_fraction(x0: float, x1: float) -> float:
    """Share of the snap-back energy between fractions x0 and x1 of the window: a density falling
    linearly to zero (most of it at once), F(x) = 2x - x²."""
    x0, x1 = max(0.0, min(1.0, x0)), max(0.0, min(1.0, x1))
    return (2 * x1 - x1 * x1) - (2 * x0 - x0 * x0)


@functools.lru_cache(maxsize=1024)
def _deferred_wh(shape: LoadShape, c: Curtailment) -> float:
    """The cooling energy an event deferred: the AC's normal draw times (1 - factor), integrated."""
    total, t = 0.0, c.start
    while t < c.end:
        step = min(60.0, c.end - t)
        total += ac_w(shape, t + step / 2) * (1.0 - c.ac_factor) * step / 3600.0
        t += step
    return total


def _consumption_wh(shape: LoadShape, start: int, length_s: int,
                    curtailments: Sequence[Curtailment]) -> float:
    mid = start + length_s / 2
    hours = length_s / 3600.0
    ac = ac_w(shape, mid) * hours
    end = start + length_s
    for c in curtailments:
        during = _overlap(start, end, c.start, c.end)
        if during:
            ac -= ac_w(shape, mid) * (1.0 - c.ac_factor) * during / 3600.0
        if c.end < end and start < c.end + SNAPBACK_S:
            share = _snapback_fraction((start - c.end) / SNAPBACK_S, (end - c.end) / SNAPBACK_S)
            ac += _deferred_wh(shape, c) * SNAPBACK_SHARE * share
    noise = 1.0 + NOISE * (2.0 * _unit(shape.key, start // INTERVAL_S, 1) - 1.0)
    return (_other_w(shape, mid) * hours + max(0.0, ac)) * noise


def interval_reads(shape: LoadShape, start: float, end: float,
                   curtailments: Sequence[Curtailment] = (), *,
                   length_s: int = INTERVAL_S) -> list[IntervalRead]:
    """The premise's intervals starting in [start, end) (aligned down to `length_s`), time-ordered:
    consumption, and generation where it has solar."""
    out: list[IntervalRead] = []
    first = int(start) - int(start) % length_s
    if first < start:
        first += length_s
    relevant = [c for c in curtailments if c.end + SNAPBACK_S > first and c.start < end]
    for t in range(first, math.ceil(end), length_s):
        quality = ESTIMATED if _unit(shape.key, t // INTERVAL_S, 2) * 1e6 < ESTIMATED_PER_MILLION else ACTUAL
        out.append(IntervalRead(t, length_s, CONSUMPTION,
                                round(_consumption_wh(shape, t, length_s, relevant)), quality))
        if shape.solar_kw:
            out.append(IntervalRead(t, length_s, GENERATION,
                                    round(_solar_w(shape, t + length_s / 2, shape.key) * length_s / 3600.0),
                                    quality))
    return out


def _day_bounds(day: date) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=LOCAL)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=LOCAL)
    return int(start.timestamp()), int(end.timestamp())


@functools.lru_cache(maxsize=65536)
def _plain_day_wh(shape: LoadShape, day: date) -> int:
    # The day's consumption intervals as interval_reads rounds them, without making the reads (a
    # register's first read sums every day since REGISTER_EPOCH: this is most of it).
    start, end = _day_bounds(day)
    return sum(round(_consumption_wh(shape, t, INTERVAL_S, ())) for t in range(start, end, INTERVAL_S))


def _day_wh(shape: LoadShape, day: date, curtailments: Sequence[Curtailment]) -> int:
    start, end = _day_bounds(day)
    touching = [c for c in curtailments if c.start < end and c.end + SNAPBACK_S > start]
    if not touching:
        return _plain_day_wh(shape, day)
    return sum(r.value_wh for r in interval_reads(shape, start, end, touching) if r.channel == CONSUMPTION)


def daily_register_reads(shape: LoadShape, first: date, last: date,
                         curtailments: Sequence[Curtailment] = ()) -> list[RegisterRead]:
    """Midnight register reads (consumption) of the local days first..last: each day's start and end
    reading, consistent with the day's intervals (the register is their running sum)."""
    if first < REGISTER_EPOCH:
        raise ValueError(f"first day {first} is before the register's start {REGISTER_EPOCH}")
    register = shape.register_start_wh
    day = REGISTER_EPOCH
    while day < first:
        register += _day_wh(shape, day, curtailments)
        day += timedelta(days=1)
    out = []
    while day <= last:
        wh = _day_wh(shape, day, curtailments)
        out.append(RegisterRead(day, register, register + wh))
        register += wh
        day += timedelta(days=1)
    return out


def monthly_register_reads(shape: LoadShape, first: date, last: date,
                           curtailments: Sequence[Curtailment] = ()) -> list[RegisterRead]:
    """Register reads at the first local midnight of each month from `first`'s month to `last`'s:
    `day` is the month's first day."""
    month_end = date(last.year + last.month // 12, last.month % 12 + 1, 1) - timedelta(days=1)
    days = daily_register_reads(shape, date(first.year, first.month, 1), month_end, curtailments)
    out: list[RegisterRead] = []
    for read in days:
        if out and out[-1].day.month == read.day.month:
            out[-1] = RegisterRead(out[-1].day, out[-1].start_wh, read.end_wh)
        else:
            out.append(RegisterRead(read.day, read.start_wh, read.end_wh))
    return out


@dataclass(frozen=True, slots=True)
class RegisterNow:
    """The consumption register as a meter reads it at `at`: the midnight read of the local day
    plus the day's ended 15-minute intervals (so it agrees with the interval data to the Wh), and
    the demand of the last ended interval."""

    at: int  # unix seconds, UTC: the end of the last ended interval
    delivered_wh: int
    demand_w: int


def register_now(shape: LoadShape, now: float, curtailments: Sequence[Curtailment] = ()) -> RegisterNow:
    """The register at `now` (consistent with `daily_register_reads` and `interval_reads`)."""
    at = int(now) // 900 * 900
    local_day = datetime.fromtimestamp(at, LOCAL).date()
    midnight = daily_register_reads(shape, local_day, local_day, curtailments)[0].start_wh
    day_start, _ = _day_bounds(local_day)
    today = [r for r in interval_reads(shape, day_start, at, curtailments) if r.channel == CONSUMPTION]
    demand = today[-1].value_wh * 4 if today else 0
    return RegisterNow(at, midnight + sum(r.value_wh for r in today), demand)


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
