"""A few thousand premises with mixed firmware: every expected answer arrives, nothing else."""

from __future__ import annotations

from collections import Counter, defaultdict

from simulators.clock import VirtualClock
from simulators.fleet import Fleet
from simulators.han import MeterDeviceStatus
from simulators.meter import ALL_DEVICES, HanEvent, MeterEvent, RelayedFrame
from simulators.profiles import FirmwareProfile
from zigbee_se import decode_frame, encode_frame

METERS = 2000


def expected_answers(profile: FirmwareProfile) -> Counter[tuple[str, int]]:
    """What this firmware must send back for one message, one price and one LCE (start now)."""
    exp: Counter[tuple[str, int]] = Counter()
    if profile.has("messaging"):
        exp[("default_response", 0x00)] += 1
    if profile.has("price"):
        if profile.quirks.reject_trailing_fields:
            exp[("default_response", 0x80)] += 1  # SE 1.0 parser vs SE 1.1 frame
        else:
            exp[("price_acknowledgement", 0)] += 1
    if profile.has("drlc"):
        for status in (0x01, 0x02, 0x03):
            exp[("report_event_status", status)] += 1
    return exp


def test_fleet_provision_message_price_and_load_control() -> None:
    clock = VirtualClock(seed=42)
    fleet = Fleet(METERS, clock)
    events: list[MeterEvent] = []
    fleet.subscribe(events.append)
    for esi in fleet.esi_ids():
        fleet.install(esi)
    clock.advance(120)
    joined = Counter(e.kind for e in events if isinstance(e, HanEvent))
    assert joined == {"han_initialized": METERS, "provisioned": 2 * METERS,
                      "find_pending": 2 * METERS, "joined": 2 * METERS}
    assert all(fleet.meter(e).device_status(d.eui64) == MeterDeviceStatus.JOINED
               for e in fleet.esi_ids() for d in fleet.devices(e))
    events.clear()
    dropped_before = {d.eui64: d.dropped for e in fleet.esi_ids() for d in fleet.devices(e)}

    msg = encode_frame("messaging", "display_message", {
        "message_id": 1, "message_control": 0, "start_time": 0, "duration_in_minutes": 60,
        "message": "Conservation alert"}, tsn=1)
    price = encode_frame("price", "publish_price", {
        "provider_id": 1, "rate_label": "CPP", "issuer_event_id": 10, "current_time": 0,
        "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 3, "price_tier": 2,
        "number_of_price_tiers": 2, "register_tier": 2, "start_time": 0,
        "duration_in_minutes": 240, "price": 450, "price_control": 0x01}, tsn=2)
    lce = encode_frame("drlc", "load_control_event", {
        "issuer_event_id": 100, "device_class": 0x000F, "utility_enrollment_group": 0,
        "start_time": 0, "duration_in_minutes": 10, "criticality_level": 4}, tsn=3)
    for esi in fleet.esi_ids():
        fleet.send(esi, ALL_DEVICES, 0x0703, msg)
        fleet.send(esi, ALL_DEVICES, 0x0700, price)
        fleet.send(esi, ALL_DEVICES, 0x0701, lce)
    clock.advance(15 * 60)

    got: dict[bytes, Counter[tuple[str, int]]] = defaultdict(Counter)
    for e in events:
        assert isinstance(e, RelayedFrame), e
        f = decode_frame(e.cluster_id, e.frame)
        key = f.fields.get("event_status", f.fields.get("status", 0))
        got[e.eui64][(f.command, key)] += 1
    lossy = 0
    for esi in fleet.esi_ids():
        for d in fleet.devices(esi):
            exp = expected_answers(d.profile)
            dropped = d.dropped - dropped_before[d.eui64]
            if d.profile.quirks.drop_ratio == 0:
                assert got[d.eui64] == exp, (esi, d.profile.id)
            else:
                # A lossy radio: fewer answers, never unexpected ones; losses are counted.
                assert got[d.eui64] <= exp, (esi, d.profile.id)
                assert exp.total() - got[d.eui64].total() <= dropped
                lossy += dropped
    assert lossy > 0
    assert sum(1 for _ in fleet.materialized()) == METERS


def test_field_addresses_meters_by_esi_id_and_materializes_lazily() -> None:
    import pytest

    from simulators.errors import SimulatorError

    clock = VirtualClock(seed=1)
    fleet = Fleet(1_000_000, clock)  # a million premises cost nothing until touched
    assert len(fleet) == 0
    esi = fleet.esi_id(765_432)
    assert esi == "10443720000765432"
    got: list[MeterEvent] = []
    unsubscribe = fleet.subscribe(got.append)
    fleet.install(esi)
    clock.advance(60)
    assert len(fleet) == 1
    assert [e.kind for e in got if isinstance(e, HanEvent)][:2] == ["han_initialized",
                                                                    "provisioned"]
    assert fleet.device_identity(765_432, 0)[0] == fleet.devices(esi)[0].eui64
    unsubscribe()
    lce = encode_frame("drlc", "load_control_event", {
        "issuer_event_id": 1, "device_class": 0x0FFF, "start_time": 0,
        "duration_in_minutes": 1, "criticality_level": 3}, tsn=1)
    assert fleet.send_many([esi], ALL_DEVICES, 0x0701, lce) == 1
    n = len(got)
    clock.advance(120)
    assert len(got) == n  # unsubscribed
    with pytest.raises(SimulatorError) as err:
        fleet.meter("10443729999999999")
    assert err.value.field == "esi_id"
    with pytest.raises(SimulatorError):
        fleet.send("1008901000000000000000", ALL_DEVICES, 0x0701, lce)  # not in this field
