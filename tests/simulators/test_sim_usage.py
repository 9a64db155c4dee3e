"""Simulated usage: deterministic load shapes, register reads consistent with the intervals, DST
days, solar, and a load-control event a device ran visible in the premise's intervals (the event
window below the same window the day before, the snap-back above it)."""

from __future__ import annotations

import itertools
from datetime import date, datetime

import pytest

from simulators.errors import SimulatorError
from simulators.meter import ALL_DEVICES
from simulators.scenario import ScenarioPremise
from simulators.usage import (
    CONSUMPTION,
    GENERATION,
    LOCAL,
    daily_register_reads,
    interval_reads,
    load_shape,
    monthly_register_reads,
    register_now,
)
from tests.simulators.test_sim_drlc import lce


def _local(*parts: int) -> float:
    return datetime(*parts, tzinfo=LOCAL).timestamp()


def _wh(reads: list, start: float, end: float) -> int:
    return sum(r.value_wh for r in reads if r.channel == CONSUMPTION and start <= r.start < end)


def test_same_premise_and_seed_same_reads_and_another_seed_differs() -> None:
    day = _local(2026, 7, 15), _local(2026, 7, 16)
    first = interval_reads(load_shape("10443720000000001", 1), *day)
    again = interval_reads(load_shape("10443720000000001", 1), *day)
    other = interval_reads(load_shape("10443720000000001", 2), *day)
    assert first == again
    assert [r.value_wh for r in first] != [r.value_wh for r in other]
    consumption = [r for r in first if r.channel == CONSUMPTION]
    assert len(consumption) == 96 and all(r.length_s == 900 for r in consumption)
    assert [r.start for r in consumption] == list(range(int(day[0]), int(day[1]), 900))
    assert {r.quality for r in first} <= {"actual", "estimated"}


def test_summer_afternoon_above_winter_and_night() -> None:
    shape = load_shape("10443720000000002")
    july = interval_reads(shape, _local(2026, 7, 15), _local(2026, 7, 16))
    january = interval_reads(shape, _local(2026, 1, 15), _local(2026, 1, 16))
    afternoon = _wh(july, _local(2026, 7, 15, 15), _local(2026, 7, 15, 18))
    night = _wh(july, _local(2026, 7, 15, 2), _local(2026, 7, 15, 5))
    assert afternoon > 2 * night
    assert _wh(july, 0, 2**40) > 1.5 * _wh(january, 0, 2**40)  # the air conditioner's season


def test_dst_days_have_92_and_100_intervals() -> None:
    shape = load_shape("10443720000000003")
    spring = interval_reads(shape, _local(2026, 3, 8), _local(2026, 3, 9))
    autumn = interval_reads(shape, _local(2026, 11, 1), _local(2026, 11, 2))
    assert len([r for r in spring if r.channel == CONSUMPTION]) == 92
    assert len([r for r in autumn if r.channel == CONSUMPTION]) == 100


def test_solar_premises_generate_by_day_only() -> None:
    solar = next(s for s in (load_shape(f"1044372{n:010d}") for n in range(1, 60)) if s.solar_kw)
    reads = interval_reads(solar, _local(2026, 6, 1), _local(2026, 6, 2))
    generated = {r.start: r.value_wh for r in reads if r.channel == GENERATION}
    assert len(generated) == 96
    assert generated[int(_local(2026, 6, 1, 13))] > 500  # 4-8 kW at midday: > 0.5 kWh a quarter hour
    assert generated[int(_local(2026, 6, 1, 2))] == 0


def test_register_reads_are_the_running_sum_of_the_intervals() -> None:
    shape = load_shape("10443720000000004")
    days = daily_register_reads(shape, date(2026, 2, 27), date(2026, 3, 2))
    assert [d.day for d in days] == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    for before, after in itertools.pairwise(days):
        assert before.end_wh == after.start_wh
    for d in days:
        start = _local(d.day.year, d.day.month, d.day.day)
        end = start + 86_400  # no DST change on these days
        assert d.wh == _wh(interval_reads(shape, start, end), start, end)
    months = monthly_register_reads(shape, date(2026, 2, 1), date(2026, 3, 31))
    assert [m.day for m in months] == [date(2026, 2, 1), date(2026, 3, 1)]
    assert months[0].end_wh == months[1].start_wh
    assert months[0].start_wh <= days[0].start_wh and months[1].start_wh == days[2].start_wh


def test_a_load_control_event_lowers_the_window_and_snaps_back_after() -> None:
    """A thermostat takes a 2-hour, 2 °C cooling set-back on a July afternoon: the event window
    uses less than the same window the day before (a comparable day: same premise, season and
    hours, no event), and the hour after the event uses more (the snap-back)."""
    p = ScenarioPremise.build(["silabs-pct"], start=_local(2026, 7, 14, 8))
    start = _local(2026, 7, 15, 15)
    p.clock.advance(start - 600 - p.clock.now())
    p.send(ALL_DEVICES, "drlc", "load_control_event",
           lce(21, start=start, minutes=120, cooling_temperature_offset=20))
    p.clock.advance(_local(2026, 7, 16) - p.clock.now())
    assert [s for _, s in p.statuses()] == [0x01, 0x02, 0x03]  # received, started, completed
    (window,) = p.meter.curtailments()
    assert abs(window.start - start) <= 2 and abs(window.end - (start + 7200)) <= 2
    assert 0.55 < window.ac_factor < 0.65  # 2 °C set-back: the compressor runs 40 % less

    reads = p.meter.read_usage(_local(2026, 7, 14), _local(2026, 7, 16))
    day = 86_400
    event = _wh(reads, start, start + 7200)
    baseline = _wh(reads, start - day, start - day + 7200)
    after = _wh(reads, start + 7200, start + 10_800)
    baseline_after = _wh(reads, start - day + 7200, start - day + 10_800)
    assert event < 0.85 * baseline, (event, baseline)
    assert after > 1.15 * baseline_after, (after, baseline_after)
    # Outside the event and its snap-back the two days are the same load shape (noise only).
    morning, morning_before = _wh(reads, start - 6 * 3600, start - 3600), _wh(reads, start - day - 6 * 3600,
                                                                               start - day - 3600)
    assert abs(morning - morning_before) < 0.1 * morning_before
    # The same event, undone: a meter with no curtailments gives the plain day.
    plain = interval_reads(p.meter.usage_shape(), start, start + 7200)
    assert _wh(plain, start, start + 7200) > event


def test_reads_end_at_the_last_complete_interval_and_a_dark_meter_refuses() -> None:
    p = ScenarioPremise.build(["silabs-pct"], start=_local(2026, 7, 14, 8, 7))
    reads = p.meter.read_usage(_local(2026, 7, 14), _local(2026, 7, 15))
    # Built at 08:07, settled 60 s later: the 07:45-08:00 interval is the last complete one.
    assert max(r.start for r in reads) == int(_local(2026, 7, 14, 7, 45))
    p.meter.set_reachable(False)
    with pytest.raises(SimulatorError, match="unreachable"):
        p.meter.read_usage(_local(2026, 7, 14), _local(2026, 7, 15))


def test_an_on_demand_register_read_agrees_with_the_intervals_and_a_dark_meter_refuses() -> None:
    shape = load_shape("10443720000000004")
    midnight = _local(2026, 3, 2)
    day = daily_register_reads(shape, date(2026, 3, 2), date(2026, 3, 2))[0]
    at_ten = register_now(shape, _local(2026, 3, 2, 10, 7))
    assert at_ten.at == int(_local(2026, 3, 2, 10))  # the last ended interval's end
    morning = interval_reads(shape, midnight, _local(2026, 3, 2, 10))
    assert at_ten.delivered_wh == day.start_wh + _wh(morning, midnight, _local(2026, 3, 2, 10))
    assert at_ten.demand_w == [r for r in morning if r.channel == CONSUMPTION][-1].value_wh * 4
    assert register_now(shape, _local(2026, 3, 3)).delivered_wh == day.end_wh
    p = ScenarioPremise.build(["silabs-pct"], start=_local(2026, 7, 14, 8, 7))
    assert p.meter.register_read().delivered_wh > 0
    p.meter.set_reachable(False)
    with pytest.raises(SimulatorError, match="unreachable"):
        p.meter.register_read()
