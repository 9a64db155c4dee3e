"""Cancellations over real HTTP, checked where they matter: in the event tables of the simulated
thermostats. `cancel_all_load_control` cancels every event of the caller on the premise (one SE
cancel per event, each with its own delivery status) and never another provider's event there; a
cancel with a future `effective_time` lets the device run the event until then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import Stack, running_stack


def _table(s: Stack, esi: str) -> dict[int, str]:
    """The thermostat's DRLC event table: issuer event id -> scheduled | active (live events only)."""
    pct = s.devices[esi][1]
    assert pct.drlc is not None
    return {e["issuer_event_id"]: e["state"] for e in pct.drlc.snapshot()
            if e["state"] != "done" and not e["superseded"]}


def _lce(esi: str, start: datetime | None, minutes: int) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "load_control", "esi_ids": [esi], "device_classes": 1, "criticality": 3,
                            "duration_minutes": minutes}
    if start is not None:
        body["start"] = start.isoformat()
    return body


async def _accepted(s: Stack, token: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await s.request(token, body)
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"storage": {"url": request.getfixturevalue("migrated_pg_url")}}


async def test_cancel_all_cancels_each_of_my_events_and_none_of_another_partys(
        tmp_path: Path, storage: dict[str, Any]) -> None:
    async with running_stack(tmp_path / "d", **storage) as s:
        _a, token_a = await s.gw.new_party("Acme", "123456789")
        _b, token_b = await s.gw.new_party("Bolt", "987654321")
        esi, other_esi = s.premises[0].esi_id, s.premises[5].esi_id  # both: silabs-ihd + silabs-pct
        await s.customer(token_a, [esi, other_esi])
        await s.customer(token_b, [esi])
        now = s.gw.clock.now()
        # B's event runs now; A's two events come after it (one device runs one event at a time).
        b_event = await _accepted(s, token_b, _lce(esi, None, 60))
        a_first = await _accepted(s, token_a, _lce(esi, now + timedelta(minutes=70), 30))
        a_second = await _accepted(s, token_a, _lce(esi, now + timedelta(minutes=110), 30))
        a_elsewhere = await _accepted(s, token_a, _lce(other_esi, None, 60))

        async def all_at_the_devices() -> bool:
            return (_table(s, esi) == {b_event["se_id"]: "active", a_first["se_id"]: "scheduled",
                                       a_second["se_id"]: "scheduled"}
                    and _table(s, other_esi) == {a_elsewhere["se_id"]: "active"})
        await s.eventually(all_at_the_devices, advance=2)

        c = await s.request(token_a, {"kind": "cancel_all_load_control", "esi_id": esi})
        assert c.status_code == 202, c.text  # was 500: UNIQUE(request_id, esi_id) with two events
        cancel_id = c.json()["id"]

        async def cancelled_at_the_device() -> bool:
            return _table(s, esi) == {b_event["se_id"]: "active"}
        await s.eventually(cancelled_at_the_device, advance=2)
        # B's event keeps running; A's event on its other premise too.
        assert _table(s, other_esi) == {a_elsewhere["se_id"]: "active"}

        # One SE cancel per event, each with its own status, naming the event it cancels.
        async def both_delivered() -> list[dict[str, Any]] | None:
            items = await s.deliveries(token_a, cancel_id)
            return items if len(items) == 2 and all(i["state"] == "delivered" for i in items) else None
        items = await s.eventually(both_delivered, advance=1)
        assert {i["se_id"] for i in items} == {a_first["se_id"], a_second["se_id"]}
        assert {i["cancels_request_id"] for i in items} == {a_first["id"], a_second["id"]}
        assert {i["command"] for i in items} == {"cancel_load_control_event"}
        assert {i["esi_id"] for i in items} == {esi}
        for one in (a_first, a_second):
            mine = await s.deliveries(token_a, cancel_id, esi_id=esi)
            assert [i for i in mine if i["se_id"] == one["se_id"]]
            assert (await s.summary(token_a, one["id"]))["premises_by_state"] == {"cancelled": 1}
        assert (await s.summary(token_b, b_event["id"]))["premises_by_state"] == {"delivered": 1}
        assert (await s.summary(token_a, a_elsewhere["id"]))["premises_by_state"] == {"delivered": 1}
        summary = await s.summary(token_a, cancel_id)
        assert summary["premises_by_state"] == {"delivered": 2}

        # Nothing left of A's to cancel there: accepted, nothing sent; B's event still runs.
        again = await s.request(token_a, {"kind": "cancel_all_load_control", "esi_id": esi})
        assert again.status_code == 202, again.text
        assert again.json()["targeted"] == 0
        assert await s.deliveries(token_a, again.json()["id"]) == []
        # B may cancel its own: B's cancel-all reaches B's event only.
        cb = await s.request(token_b, {"kind": "cancel_all_load_control", "esi_id": esi})
        assert cb.status_code == 202, cb.text

        async def b_stopped() -> bool:
            return _table(s, esi) == {}
        await s.eventually(b_stopped, advance=2)
        assert _table(s, other_esi) == {a_elsewhere["se_id"]: "active"}
        assert [i["se_id"] for i in await s.deliveries(token_b, cb.json()["id"])] == [b_event["se_id"]]


async def test_cancel_all_before_delivery_sends_nothing(tmp_path: Path) -> None:
    # CenterPoint premises have no route in this stack: the events wait in the outbox.
    async with running_stack(tmp_path / "d", no_route_prefix="1008901") as s:
        _a, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[2].esi_id
        await s.customer(token, [esi])
        now = s.gw.clock.now()
        first = await _accepted(s, token, _lce(esi, None, 30))
        second = await _accepted(s, token, _lce(esi, now + timedelta(minutes=40), 30))
        c = await s.request(token, {"kind": "cancel_all_load_control", "esi_id": esi})
        assert c.status_code == 202, c.text
        assert c.json()["targeted"] == 0  # nothing reached the meter: no SE cancel needed
        for one in (first, second):
            assert (await s.summary(token, one["id"]))["premises_by_state"] == {"cancelled": 1}
        assert await s.deliveries(token, c.json()["id"]) == []


async def test_cancel_with_a_future_effective_time_runs_the_event_until_then(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _a, token_a = await s.gw.new_party("Acme", "123456789")
        _b, token_b = await s.gw.new_party("Bolt", "987654321")
        esi = s.premises[0].esi_id
        await s.customer(token_a, [esi])
        await s.customer(token_b, [esi])
        event = await _accepted(s, token_a, _lce(esi, None, 60))
        pct = s.devices[esi][1]

        async def running() -> bool:
            return _table(s, esi) == {event["se_id"]: "active"}
        await s.eventually(running, advance=2)
        assert pct.drlc.active() is not None

        # The field's clock is the devices' clock: the cancel takes effect 5 minutes from there.
        effective = datetime.fromtimestamp(int(s.clock.now()) + 300, UTC)
        c = await s.request(token_a, {"kind": "cancel_load_control", "request_id": event["id"],
                                      "effective_time": effective.isoformat()})
        assert c.status_code == 202, c.text
        assert c.json()["targeted"] == 1

        async def cancel_delivered() -> bool:
            items = await s.deliveries(token_a, c.json()["id"])
            return bool(items) and items[0]["state"] == "delivered"
        await s.eventually(cancel_delivered, advance=1)
        assert (await s.deliveries(token_a, c.json()["id"]))[0]["cancels_request_id"] == event["id"]

        # Until the effective time the event keeps running at the device ...
        await s.advance(240, step=10)
        assert _table(s, esi) == {event["se_id"]: "active"}
        active = pct.drlc.active()
        assert active is not None and active.issuer_event_id == event["se_id"]
        # ... and the gateway still counts it: another provider's overlapping event is refused.
        clash = await s.request(token_b, _lce(esi, None, 30))
        assert clash.status_code == 409, clash.text
        assert clash.json()["code"] == "event_conflict"

        # Then it stops there, and the device says so.
        await s.advance(90, step=10)

        async def stopped() -> bool:
            return event["se_id"] not in _table(s, esi)
        await s.eventually(stopped, advance=1)
        assert pct.drlc.active() is None

        async def device_reported_cancelled() -> bool:
            devices = (await s.deliveries(token_a, event["id"]))[0]["devices"]
            return any(d["state"] == "cancelled" for d in devices)
        await s.eventually(device_reported_cancelled, advance=1)
        # From the effective time on the premise is free for another provider's event.
        later = await s.request(token_b, _lce(esi, effective + timedelta(minutes=2), 30))
        assert later.status_code == 202, later.text


async def test_an_effective_time_without_zone_or_after_the_end_is_refused_by_name(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        _a, token = await s.gw.new_party("Acme", "123456789")
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        event = await _accepted(s, token, _lce(esi, None, 30))
        now = s.gw.clock.now()
        for value, code in ((now.replace(tzinfo=None) + timedelta(minutes=5), "naive_time"),
                            (now + timedelta(minutes=31), "effective_time_after_end")):
            r = await s.request(token, {"kind": "cancel_load_control", "request_id": event["id"],
                                        "effective_time": value.isoformat()})
            assert r.status_code == 422, r.text
            [error] = r.json()["errors"]
            assert error["field"] == "effective_time" and error["code"] == code, error
        # Nothing was cancelled: the event still counts, and still runs at the device.
        assert (await s.summary(token, event["id"]))["premises_by_state"].get("cancelled") is None

        async def running() -> bool:
            return _table(s, esi) == {event["se_id"]: "active"}
        await s.eventually(running, advance=2)
