"""The conformance kit: what any TDSP adapter must do, run against all five over real sockets and
the real Mosquitto broker (no transport mocks). ``test_conformance.py`` collects it; an integrator
binding a real head-end runs the same functions against their rig (docs/adapter-author.md)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from ams_adapters.contract import (
    DeliveredToMeter,
    DeliveryFailed,
    DeviceResponse,
    MeterReachability,
    OperationKind,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    Route,
    SubmitOutcome,
    Target,
    TargetKind,
)
from simulators.addressing import eui64_str
from simulators.headends.faults import Faults
from simulators.usage import register_now
from tests.adapters.harness import TDSPS, Rig, assert_paced, install, op, rig
from zigbee_se import InstallCodeError, SEVersion, parse_install_code

pytestmark = pytest.mark.parametrize("tdsp", TDSPS)
FAST = {"request_timeout_s": 0.5, "breaker_reset_s": 0.3}


def _response(r: Rig, outbound_id: str, command: str) -> list[DeviceResponse]:
    return [e for e in r.events if isinstance(e, DeviceResponse) and e.outbound_id == outbound_id
            and e.command == command]


async def _accepted(r: Rig, o: object) -> None:
    (res,) = await r.adapter.submit([o])  # type: ignore[list-item]
    assert res.outcome is SubmitOutcome.ACCEPTED, res
    assert res.reference


# ------------------------------------------------------------------ every contract operation


async def test_every_han_operation_round_trips(tdsp: str) -> None:
    async with rig(tdsp) as r:
        assert isinstance(r.adapter, Route)
        caps = r.adapter.capabilities
        assert caps.name == tdsp and caps.batch_size >= 1 and caps.rate_limit_per_s > 0
        assert caps.max_text_bytes == (80 if tdsp == "oncor" else 57)  # UTF-8 bytes (ams_adapters/text_limit.py)
        assert caps.max_frame_size == (None if tdsp == "oncor" else 73)
        mcaps = await r.adapter.meter_capabilities(r.fleet.esi_id(0))
        assert mcaps.se_version is SEVersion.V1_1
        (esi,) = await install(r, 1)
        ihd, pct = r.fleet.devices(esi)

        text = op(OperationKind.TEXT, esi, message_id=11)
        await _accepted(r, text)
        await r.wait_for(lambda e: isinstance(e, DeliveredToMeter) and e.outbound_id == text.outbound_id)
        await r.until(lambda: ihd.messaging is not None and ihd.messaging.displayed_text == "Peak pricing 4-7pm")
        assert ihd.confirm_message()
        (conf,) = await r.until(lambda: _response(r, text.outbound_id, "message_confirmation"))
        assert conf.fields["message_id"] == 11 and conf.eui64 == eui64_str(ihd.eui64)

        one = op(OperationKind.TEXT, esi, target=Target(TargetKind.DEVICE, eui64_str(ihd.eui64)), message_id=12,
                 message="Just you")
        await _accepted(r, one)
        await r.until(lambda: ihd.messaging is not None and ihd.messaging.displayed_text == "Just you")

        cancel = op(OperationKind.CANCEL_TEXT, esi, message_id=12)
        await _accepted(r, cancel)
        await r.wait_for(lambda e: isinstance(e, DeliveredToMeter) and e.outbound_id == cancel.outbound_id)
        await r.until(lambda: ihd.messaging is not None and ihd.messaging.displayed_text is None)

        price = op(OperationKind.PRICE, esi, issuer_event_id=21)
        await _accepted(r, price)
        (ack,) = await r.until(lambda: _response(r, price.outbound_id, "price_acknowledgement"))
        assert ack.fields["issuer_event_id"] == 21

        lce = op(OperationKind.LOAD_CONTROL, esi, issuer_event_id=31)
        await _accepted(r, lce)
        await r.until(lambda: bool(_response(r, lce.outbound_id, "report_event_status")))
        stop = op(OperationKind.CANCEL_LOAD_CONTROL, esi, issuer_event_id=31)
        await _accepted(r, stop)
        await r.until(lambda: any(x.fields["event_status"] == 0x06
                                       for x in _response(r, stop.outbound_id, "report_event_status")))
        assert pct.eui64  # the thermostat answered for its event
        cancel_all = op(OperationKind.CANCEL_ALL_LOAD_CONTROL, esi)
        await _accepted(r, cancel_all)
        await r.wait_for(lambda e: isinstance(e, DeliveredToMeter) and e.outbound_id == cancel_all.outbound_id)
        for o in (text, one, cancel, price, lce, stop, cancel_all):
            assert len(r.ends(o.outbound_id)) == 1
            assert r.core.meter_deliveries[r.adapter.tracker.get(o.outbound_id).transaction_id] == 1


async def test_refusals_name_field_value_and_limit(tdsp: str) -> None:
    async with rig(tdsp) as r:
        esi = r.fleet.esi_id(0)
        # The gateway refuses a text over the route's max_text_bytes before acceptance; the adapter
        # does not check it again, so one that reaches it anyway is refused by the head-end itself.
        limit = r.adapter.profile.max_text_bytes
        long_text = op(OperationKind.TEXT, esi, message="é" * (limit // 2) + "x" * (limit % 2 + 1))
        expired = op(OperationKind.TEXT, esi, expires_in=-1)
        tiers = op(OperationKind.PRICE, esi, number_of_price_tiers=r.adapter.profile.meter.price_tiers + 1,
                   price_tier=1) if r.adapter.profile.meter.price_tiers < 15 else None
        nobody = op(OperationKind.TEXT, "99999999999999999")
        batch = [long_text, expired, nobody] + ([tiers] if tiers else [])
        results = await r.adapter.submit(batch)
        assert [x.outbound_id for x in results] == [o.outbound_id for o in batch]
        assert all(x.outcome is SubmitOutcome.REJECTED for x in results), results
        assert f"limit {limit}" in (results[0].reason or "") and str(limit + 1) in (results[0].reason or "")
        assert (results[1].reason or "").startswith("expired")
        assert "no such meter" in (results[2].reason or "")
        if tiers:
            assert "number_of_price_tiers" in (results[3].reason or "")


async def test_resubmit_is_idempotent(tdsp: str) -> None:
    async with rig(tdsp) as r:
        (esi,) = await install(r, 1)
        o = op(OperationKind.LOAD_CONTROL, esi, "same-outbound", issuer_event_id=41)
        first = await r.adapter.submit([o])
        again = await asyncio.gather(r.adapter.submit([o]), r.adapter.submit([o, o]))
        assert again[0] == first and again[1] == first + first
        await r.until(lambda: bool(r.ends(o.outbound_id)))
        await asyncio.sleep(0.3)
        assert len(r.ends(o.outbound_id)) == 1
        assert r.core.meter_deliveries[first[0].reference] == 1
        assert await r.adapter.submit([o]) == first  # after the end too


async def test_batches_keep_order_and_split_by_batch_size(tdsp: str) -> None:
    async with rig(tdsp, profile_overrides={"batch_size": 3}) as r:
        esis = await install(r, 4)
        ops = [op(OperationKind.PRICE, esis[i % 4], issuer_event_id=100 + i) for i in range(10)]
        results = await r.adapter.submit(ops)
        assert [x.outbound_id for x in results] == [o.outbound_id for o in ops]
        assert all(x.outcome is SubmitOutcome.ACCEPTED for x in results)
        await r.until(lambda: all(r.ends(o.outbound_id) for o in ops))


async def test_group_operations_carry_one_payload_to_many_meters(tdsp: str) -> None:
    """Over MultiSpeak with the profile's `group_operations` on, a batch of identical texts (or
    events) to several meters travels as one ...ToGroup operation; each member keeps its own
    transaction, ends in its own DeliveredToMeter and reaches its meter once; an item whose
    payload differs travels alone."""
    async with rig(tdsp, transport="multispeak", profile_overrides={"group_operations": True}) as r:
        esis = await install(r, 4)
        same = [op(OperationKind.TEXT, e, message_id=31) for e in esis]
        alone = op(OperationKind.TEXT, esis[0], message_id=32, message="Just this one")
        events = [op(OperationKind.LOAD_CONTROL, e, issuer_event_id=41) for e in esis[:2]]
        ghost = op(OperationKind.TEXT, r.fleet.esi_id(10_000), message_id=31)  # no such meter
        until = time.time() + 10  # one expirationTime: part of a group's shared payload
        same, alone, events, ghost = ([replace(o, expires_at=until) for o in same], replace(alone, expires_at=until),
                                      [replace(o, expires_at=until) for o in events], replace(ghost, expires_at=until))
        batch = [*same, alone, *events]
        results = await r.adapter.submit([*batch, ghost])
        assert [x.outcome for x in results] == [SubmitOutcome.ACCEPTED] * len(batch) + [SubmitOutcome.REJECTED]
        assert "no such meter" in (results[-1].reason or "")  # refused alone, inside its group
        assert r.core.stats["group_requests"] == 2 and r.core.stats["group_members"] == 7
        for o in batch:
            await r.wait_for(lambda e, o=o: isinstance(e, DeliveredToMeter) and e.outbound_id == o.outbound_id)
        for e in esis[1:]:
            ihd = r.fleet.devices(e)[0]
            await r.until(lambda ihd=ihd: ihd.messaging is not None
                          and ihd.messaging.displayed_text == "Peak pricing 4-7pm")
        # the same batch again: answered from the first results, nothing reaches a meter twice
        assert await r.adapter.submit(same) == results[:4]
        assert sorted(r.core.meter_deliveries.values()) == [1] * len(batch)




async def test_provisioning_end_to_end(tdsp: str) -> None:
    # join windows of 1 day on the wire last 0.6 s at this emulated head-end
    async with rig(tdsp, join_window_scale=0.6 / 86400) as r:
        esi = r.fleet.esi_id(0)
        ihd, pct = r.fleet.devices(esi)
        meter = r.fleet.meter(esi)

        def prov(rid: str, kind: ProvisioningKind, dev: object = None,
                 code: bytes | None = None) -> ProvisioningRequest:
            eui = eui64_str(dev.eui64) if dev is not None else None  # type: ignore[attr-defined]
            key = parse_install_code(code.hex()).link_key if code is not None else None
            return ProvisioningRequest(rid, esi, kind, eui64=eui, link_key=key,
                                       join_window_s=86400 if kind is ProvisioningKind.PROVISION_DEVICE else None)

        # a bad CRC is refused at entry, naming the expected CRC: nothing travels
        bad = bytearray(ihd.install_code)
        bad[-1] ^= 0xFF
        with pytest.raises(InstallCodeError) as info:
            parse_install_code(bytes(bad).hex())
        assert info.value.expected_crc

        early = await r.adapter.provision(prov("p0", ProvisioningKind.PROVISION_DEVICE, ihd, ihd.install_code))
        assert early.outcome is SubmitOutcome.ACCEPTED
        await r.until(lambda: any(u.state is ProvisioningState.FAILED for u in r.updates("p0")))
        assert "initialization required" in (r.updates("p0")[-1].reason or "")

        init = await r.adapter.provision(prov("p1", ProvisioningKind.INITIALIZE_HAN))
        assert init.outcome is SubmitOutcome.ACCEPTED
        await r.until(lambda: any(u.state is ProvisioningState.DONE for u in r.updates("p1")))

        ok = await r.adapter.provision(prov("p2", ProvisioningKind.PROVISION_DEVICE, ihd, ihd.install_code))
        assert ok.outcome is SubmitOutcome.ACCEPTED
        await r.until(lambda: meter.device_status(ihd.eui64) is not None)  # the meter opened its window
        meter.join(ihd)  # the customer presses the join button
        await r.until(lambda: any(u.state is ProvisioningState.JOINED for u in r.updates("p2")))
        states = [u.state for u in r.updates("p2")]
        assert states[0] is ProvisioningState.REQUESTED and ProvisioningState.FIND_PENDING in states

        # the PCT's install code was mistyped: a different (valid-CRC) code's key was sent
        wrong = await r.adapter.provision(prov("p3", ProvisioningKind.PROVISION_DEVICE, pct, ihd.install_code))
        assert wrong.outcome is SubmitOutcome.ACCEPTED
        await r.until(lambda: meter.device_status(pct.eui64) is not None)
        meter.join(pct)
        (failed,) = await r.wait_for(lambda e: isinstance(e, ProvisioningUpdate) and e.request_id == "p3"
                                     and e.state is ProvisioningState.FAILED)
        assert failed.reason == "link_key_mismatch"

        # nobody pressed the button: the join window lapses
        await r.adapter.provision(prov("p4", ProvisioningKind.DELETE_DEVICE, pct))
        await r.until(lambda: any(u.state is ProvisioningState.DELETED for u in r.updates("p4")))
        await r.adapter.provision(prov("p5", ProvisioningKind.PROVISION_DEVICE, pct, pct.install_code))
        (lapsed,) = await r.wait_for(lambda e: isinstance(e, ProvisioningUpdate) and e.request_id == "p5"
                                     and e.state is ProvisioningState.FAILED, timeout=4)
        assert lapsed.reason == "join_window_expired"

        # device limit: 5 on a non-Enhanced meter
        for i in range(6):
            eui = eui64_str((0x00AA000000000000 + i).to_bytes(8, "little"))
            await r.adapter.provision(ProvisioningRequest(f"lim{i}", esi, ProvisioningKind.PROVISION_DEVICE,
                                                          eui64=eui, link_key=bytes(16), join_window_s=86400))
        await r.until(lambda: any(u.state is ProvisioningState.FAILED for u in r.updates("lim5")
                                       + r.updates("lim4") + r.updates("lim3")))
        limited = [u for i in range(6) for u in r.updates(f"lim{i}") if u.state is ProvisioningState.FAILED
                   and "devices" in (u.reason or "")]
        assert limited, [r.updates(f"lim{i}") for i in range(6)]

        await r.adapter.provision(prov("p6", ProvisioningKind.CLEAR_DEVICES))
        await r.until(lambda: any(u.state is ProvisioningState.DONE for u in r.updates("p6")))
        await r.adapter.provision(prov("p7", ProvisioningKind.DECOMMISSION_HAN))
        await r.until(lambda: any(u.state is ProvisioningState.DONE for u in r.updates("p7")))
        assert await r.adapter.provision(prov("p7", ProvisioningKind.DECOMMISSION_HAN)) == (
            await r.adapter.provision(prov("p7", ProvisioningKind.DECOMMISSION_HAN)))


# ------------------------------------------------------------------ faults


async def test_meter_unreachable_then_back_or_dark_until_expiry(tdsp: str) -> None:
    async with rig(tdsp) as r:
        a, b = await install(r, 2)
        r.core.meter_unreachable_for(a, 0.6)
        r.core.meter_unreachable_for(b, 30)
        await r.wait_for(lambda e: isinstance(e, MeterReachability) and e.esi_id == a and not e.reachable)
        back = op(OperationKind.PRICE, a)
        dark = op(OperationKind.PRICE, b, expires_in=1.0)
        assert all(x.outcome is SubmitOutcome.ACCEPTED for x in await r.adapter.submit([back, dark]))
        await r.wait_for(lambda e: isinstance(e, DeliveredToMeter) and e.outbound_id == back.outbound_id)
        await r.wait_for(lambda e: isinstance(e, MeterReachability) and e.esi_id == a and e.reachable)
        (gone,) = await r.wait_for(lambda e: isinstance(e, DeliveryFailed) and e.outbound_id == dark.outbound_id)
        assert gone.expired and "expired" in gone.reason
        assert r.core.meter_deliveries[r.adapter.tracker.get(dark.outbound_id).transaction_id] == 0


async def test_transient_errors_retry_then_open_the_breaker(tdsp: str) -> None:
    async with rig(tdsp, faults=Faults(error_rate=1.0), profile_overrides=FAST) as r:
        (esi,) = await install(r, 1)
        results = await r.adapter.submit([op(OperationKind.PRICE, esi)])
        assert results[0].outcome is SubmitOutcome.RETRY_LATER and results[0].retry_after_s
        assert r.core.stats["injected_errors"] == r.adapter.profile.retries + 1
        for _ in range(r.adapter.profile.breaker_failures):
            await r.adapter.submit([op(OperationKind.PRICE, esi)])
        assert r.adapter.breaker.state == "open"
        before = r.core.stats["injected_errors"]
        (fast,) = await r.adapter.submit([op(OperationKind.PRICE, esi)])
        assert fast.outcome is SubmitOutcome.RETRY_LATER and "circuit open" in (fast.reason or "")
        assert r.core.stats["injected_errors"] == before  # nothing sent while open
        r.core.faults.error_rate = 0.0
        await asyncio.sleep(fast.retry_after_s or 0.3)
        o = op(OperationKind.PRICE, esi)
        await _accepted(r, o)
        assert r.adapter.breaker.state == "closed"


async def test_withheld_answers_and_busy_head_end(tdsp: str) -> None:
    async with rig(tdsp, faults=Faults(timeout_rate=1.0), profile_overrides=FAST) as r:
        (esi,) = await install(r, 1)
        o = op(OperationKind.PRICE, esi)
        (res,) = await r.adapter.submit([o])
        # the head-end carried it out but its answer never came; the retry (same transaction id)
        # is recognized and answered, and the meter had it once
        assert res.outcome is SubmitOutcome.ACCEPTED, res
        await r.until(lambda: bool(r.ends(o.outbound_id)))
        assert r.core.meter_deliveries[res.reference] == 1 and r.core.stats["duplicate_requests"] >= 1
        r.core.faults.timeout_rate = 0.0
        r.core.faults.busy_rate = 1.0
        (busy,) = await r.adapter.submit([op(OperationKind.PRICE, esi)])
        assert busy.outcome is SubmitOutcome.RETRY_LATER and busy.retry_after_s and "busy" in (busy.reason or "")


async def test_callbacks_dropped_duplicated_late_and_out_of_order(tdsp: str) -> None:
    async with rig(tdsp, profile_overrides={"expiry_grace_s": 0.1}) as r:
        (esi,) = await install(r, 1)
        # never come: expired, with a reason
        r.core.faults.drop_callback_rate = 1.0
        lost = op(OperationKind.PRICE, esi, expires_in=0.5)
        await _accepted(r, lost)
        (e1,) = await r.wait_for(lambda e: isinstance(e, DeliveryFailed) and e.outbound_id == lost.outbound_id)
        assert e1.expired
        # duplicated: one end, one answer per device frame
        r.core.faults.drop_callback_rate = 0.0
        r.core.faults.duplicate_callback_rate = 1.0
        dup = op(OperationKind.LOAD_CONTROL, esi, issuer_event_id=51)
        await _accepted(r, dup)
        await r.until(lambda: bool(_response(r, dup.outbound_id, "report_event_status")))
        await asyncio.sleep(0.25)
        assert len(r.ends(dup.outbound_id)) == 1
        frames = [e.frame for e in _response(r, dup.outbound_id, "report_event_status")]
        assert len(frames) == len(set(frames))
        # late beyond expiry: expired first, the late report is ignored
        r.core.faults.duplicate_callback_rate = 0.0
        r.core.faults.late_callback_rate = 1.0
        r.core.faults.late_callback_s = 0.8
        late = op(OperationKind.PRICE, esi, expires_in=0.3)
        await _accepted(r, late)
        await r.wait_for(lambda e: isinstance(e, DeliveryFailed) and e.outbound_id == late.outbound_id)
        await asyncio.sleep(0.6)
        assert [type(e) for e in r.ends(late.outbound_id)] == [DeliveryFailed]
        # out of order: the device's answer overtakes the delivery report
        r.core.faults.late_callback_s = 0.4
        r.core.faults.late_kinds = ("delivered",)
        ooo = op(OperationKind.LOAD_CONTROL, esi, issuer_event_id=52)
        await _accepted(r, ooo)
        await r.until(lambda: bool(_response(r, ooo.outbound_id, "report_event_status")))
        await asyncio.sleep(0.5)
        ends = r.ends(ooo.outbound_id)
        assert [type(e) for e in ends] == [DeliveredToMeter]
        assert r.events.index(ends[0]) < r.events.index(_response(r, ooo.outbound_id, "report_event_status")[0])
        assert r.adapter.tracker.duplicates_ignored + r.adapter.tracker.late_ignored >= 2


async def test_connection_drops_reconnect_and_resubscribe(tdsp: str) -> None:
    async with rig(tdsp, via_proxy=True, profile_overrides=FAST) as r:
        (esi,) = await install(r, 1)
        first = op(OperationKind.PRICE, esi)
        await _accepted(r, first)
        assert r.proxy is not None
        r.proxy.cut_all()
        await asyncio.sleep(0.3)
        o = op(OperationKind.LOAD_CONTROL, esi, issuer_event_id=61)
        for _ in range(20):
            (res,) = await r.adapter.submit([o])
            if res.outcome is SubmitOutcome.ACCEPTED:
                break
            await asyncio.sleep(res.retry_after_s or 0.1)
        assert res.outcome is SubmitOutcome.ACCEPTED
        await r.until(lambda: bool(_response(r, o.outbound_id, "report_event_status")))  # events flow again
        if r.adapter.profile.transport == "binary":
            r.core.faults.disconnect_rate = 1.0
            (cut,) = await r.adapter.submit([op(OperationKind.PRICE, esi)])
            assert cut.outcome is SubmitOutcome.RETRY_LATER and "transport" in (cut.reason or "")
            assert r.core.stats["disconnects"] >= 1


async def test_head_end_down_for_a_period(tdsp: str) -> None:
    async with rig(tdsp, profile_overrides=FAST) as r:
        (esi,) = await install(r, 1)
        outage = asyncio.create_task(r.headend.down_for(2.5))
        await asyncio.sleep(0.1)
        o = op(OperationKind.PRICE, esi, expires_in=8)
        (during,) = await r.adapter.submit([o])
        assert during.outcome is SubmitOutcome.RETRY_LATER, during
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            (res,) = await r.adapter.submit([o])
            if res.outcome is SubmitOutcome.ACCEPTED:
                break
            await asyncio.sleep(min(res.retry_after_s or 0.2, 0.5))
        await outage
        assert res.outcome is SubmitOutcome.ACCEPTED, res
        await r.until(lambda: bool(r.ends(o.outbound_id)))
        assert isinstance(r.ends(o.outbound_id)[0], DeliveredToMeter)
        assert r.core.meter_deliveries[r.adapter.tracker.get(o.outbound_id).transaction_id] == 1


async def test_rate_limit_and_in_flight_bound_push_back(tdsp: str) -> None:
    async with rig(tdsp, profile_overrides={"rate_limit_per_s": 20.0, "max_in_flight": 6}) as r:
        esis = await install(r, 2)
        r.core.faults.drop_callback_rate = 1.0  # nothing ends: items stay in flight
        ops = [op(OperationKind.PRICE, esis[i % 2], expires_in=3) for i in range(10)]
        results = await r.adapter.submit(ops)
        accepted = [x for x in results if x.outcome is SubmitOutcome.ACCEPTED]
        later = [x for x in results if x.outcome is SubmitOutcome.RETRY_LATER]
        assert len(accepted) <= 6 and later and all(x.retry_after_s for x in later)
        assert any("in flight" in (x.reason or "") or "rate limit" in (x.reason or "") for x in later)
        assert r.adapter.in_flight.count == len(accepted)


async def test_the_head_end_gets_batches_of_batch_size_at_the_profile_rate(tdsp: str) -> None:
    """Batching and pacing are the adapter's (docs/adapter-author.md): two callers handing it more
    than a burst at once, unbatched, are sent in batches of `batch_size` at `rate_limit_per_s`, all
    accepted (waited for, not pushed back), and the emulated head-end counts what it got."""
    paced = {"batch_size": 4, "rate_limit_per_s": 40.0}
    async with rig(tdsp, profile_overrides=paced) as r:
        first = [op(OperationKind.PRICE, r.fleet.esi_id(i % 20), issuer_event_id=300 + i) for i in range(20)]
        second = [op(OperationKind.PRICE, r.fleet.esi_id(i % 20), issuer_event_id=400 + i) for i in range(12)]
        started = time.monotonic()
        results = await asyncio.gather(r.adapter.submit(first), r.adapter.submit(second))
        took = time.monotonic() - started
        assert all(x.outcome is SubmitOutcome.ACCEPTED for batch in results for x in batch), results
        assert sum(n for _, n in r.core.received) == 32
        assert_paced(r.core.received, batch_size=4, rate_per_s=40.0)
        assert took >= (32 - 4) / 40.0 - 0.05  # paced: a burst, then the rest at 40/s


async def test_usage_reads_equal_the_meters_own(tdsp: str) -> None:
    """Interval data (paged by the head-end) and an on-demand read through the TDSP's protocol equal
    what the meter has, with every callback sent twice and late (issue 16)."""
    faults = Faults(duplicate_callback_rate=1.0, late_callback_rate=1.0, late_callback_s=0.2)
    async with rig(tdsp, meters=6, faults=faults, max_intervals_per_read=8) as r:
        esi = r.fleet.esi_id(3)
        end = int(time.time()) // 900 * 900 - 900
        reads = await r.adapter.read_usage(esi, end - 6 * 3600, end)
        own = r.fleet.meter(esi).read_usage(end - 6 * 3600, end)
        assert [(x.start, x.channel.value, x.value_wh, x.quality.value) for x in reads] == [
            (m.start, m.channel, m.value_wh, m.quality) for m in own]
        assert r.core.stats["interval_reads"] >= 3  # 24 intervals, 8 a page
        first, second = await asyncio.gather(r.adapter.read_meter(esi), r.adapter.read_meter(esi))
        meter = r.fleet.meter(esi)
        for read in (first, second):  # the register as it was at each read's time
            assert read.delivered_wh == register_now(meter.usage_shape(), read.read_at).delivered_wh
        await asyncio.sleep(0.5)  # the duplicates arrive: answers of ended reads, dropped
        assert r.adapter.stats["unknown_notifications"] == 0 and not r.events
