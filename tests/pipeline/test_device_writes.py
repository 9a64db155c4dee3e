"""Device writes through the simulated route on the field's virtual clock: the Write Attributes
reaches the one device named (on SE 1.0, 1.1 and 1.2 meters alike), its answer ends the request,
and a device that never answers ends `no_answer` at the request's end instead of waiting forever.

The simulated route provisions nothing (its field's devices are installed when it is built), so the
devices are put on record as a head-end would have reported them joined."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from ams_adapters.se_frames import encode_command
from gateway.domain.model import DeviceStatus
from gateway.pipeline.device_writes import outcome
from gateway.pipeline.webhooks import verify
from tests.gateway.conftest import start_server, stop_server
from tests.pipeline.conftest import Stack, running_stack

GROUP = "enrollment-group"


def _eui(device: Any) -> str:
    return device.eui64[::-1].hex().upper()


async def _on_record(s: Stack, esi_id: str, eui64: str, device_type: str, party_id: int | None = None) -> None:
    now = s.gw.clock.now()
    assert await s.gw.store.add_device(esi_id=esi_id, eui64=eui64, device_type=device_type, party_id=party_id,
                                       now=now)
    assert await s.gw.store.set_device_status(esi_id, eui64, DeviceStatus.JOINED, now)


async def _delivery(s: Stack, request_id: int) -> dict[str, Any]:
    r = await s.gw.client.get(f"/v1/han-requests/{request_id}/deliveries", headers=s.gw.op)
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    result: dict[str, Any] = item
    return result


async def test_a_write_reaches_the_one_device_on_every_se_version(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        # A thermostat (SE 1.1 meter), a water heater (1.2) and a pool pump (1.0), each with a display beside it.
        chosen = [p for p in s.premises if p.se_version in ("1.0", "1.1", "1.2")]
        by_version = {p.se_version: p for p in reversed(chosen)}
        assert sorted(by_version) == ["1.0", "1.1", "1.2"]
        written: dict[int, tuple[Any, int, int]] = {}
        for group, (_version, premise) in enumerate(sorted(by_version.items()), start=11):
            display, controlled = s.devices[premise.esi_id]
            assert controlled.drlc is not None and display.drlc is None
            await _on_record(s, premise.esi_id, _eui(controlled), controlled.profile.device_type)
            r = await s.gw.client.put(f"/v1/premises/{premise.esi_id}/devices/{_eui(controlled)}/{GROUP}",
                                      headers=s.gw.op, json={"utility_enrollment_group": group})
            assert r.status_code == 202, r.text
            written[r.json()["id"]] = (controlled, group, r.json()["se_id"])

        async def all_written() -> bool:
            states = [(await _delivery(s, rid))["state"] for rid in written]
            return all(state == "written" for state in states)
        await s.eventually(all_written, advance=1.0)
        for rid, (device, group, se_id) in written.items():
            item = await _delivery(s, rid)
            assert device.drlc.ueg == group
            assert [d["state"] for d in item["devices"]] == ["written"]
            assert item["se_version"] in ("1.0", "1.1", "1.2")
            # The route encodes the frame (the gateway stores the fields): the same on every SE version,
            # ZCL's Write Attributes, server->client, its sequence number the write's id mod 256 (the
            # device's answer was matched by it: "written" above), one uint8 record (0x0000).
            assert item["frame"] is None and item["command"] == "write_attributes"
            assert encode_command(0x0701, "write_attributes", {"records": [
                {"attribute_id": 0, "data_type": 0x20, "value": group}]}, item["se_version"], tsn=se_id) == (
                bytes.fromhex(f"08{se_id & 0xFF:02x}02000020{group:02x}"))


async def test_the_owner_gets_the_devices_answer_as_signed_webhook_events(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], str]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def receive(request: Request) -> dict[str, str]:
        got.append(({k.lower(): v for k, v in request.headers.items()}, (await request.body()).decode()))
        return {}

    server, task, port = await start_server(hook)
    try:
        async with running_stack(tmp_path / "d") as s:
            party, token = await s.gw.new_party("Acme", "123456789")
            premise = s.premises[0]
            pct = s.devices[premise.esi_id][1]
            await s.customer(token, [premise.esi_id], scopes=["load_control"])
            await _on_record(s, premise.esi_id, _eui(pct), "thermostat", party_id=party)  # Acme installed it
            w = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token),
                                       json={"url": f"http://127.0.0.1:{port}/hook"})
            assert w.status_code == 201, w.text
            secret = w.json()["secret"]
            r = await s.gw.client.put(f"/v1/premises/{premise.esi_id}/devices/{_eui(pct)}/{GROUP}",
                                      headers=s.gw.auth(token), json={"utility_enrollment_group": 7})
            assert r.status_code == 202, r.text
            rid = r.json()["id"]

            async def written_hook() -> bool:
                return sum('"written"' in b for _, b in got) == 2  # the device's state and the delivery's
            await s.eventually(written_hook, advance=1.0)
    finally:
        await stop_server(server, task)
    assert all(verify(secret, h, b) for h, b in got)
    events = [json.loads(b) for _, b in got if json.loads(b)["request_id"] == rid]
    assert [(e["type"], e["state"]) for e in events] == [
        ("delivery.state", "submitted"), ("delivery.state", "delivered"),
        ("delivery.device_state", "written"), ("delivery.state", "written")]
    assert events[2]["eui64"].replace(":", "").upper() == _eui(pct)
    assert pct.drlc is not None and pct.drlc.ueg == 7


async def test_a_device_that_never_answers_ends_no_answer_at_the_requests_end(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d", pipeline={"device_write_minutes": 30}) as s:
        esi = s.premises[0].esi_id
        absent = "001BC5000000EEEE"  # on record, but no such device joined the meter
        await _on_record(s, esi, absent, "thermostat")
        r = await s.gw.client.put(f"/v1/premises/{esi}/devices/{absent}/{GROUP}", headers=s.gw.op,
                                  json={"utility_enrollment_group": 4})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]

        async def delivered() -> bool:
            return bool((await _delivery(s, rid))["state"] == "delivered")
        await s.eventually(delivered, advance=1.0)
        s.gw.clock.advance(timedelta(minutes=29))
        await s.advance(3)
        assert (await _delivery(s, rid))["state"] == "delivered"  # still within its time

        s.gw.clock.advance(timedelta(minutes=2))

        async def ended() -> dict[str, Any] | None:
            item = await _delivery(s, rid)
            return item if item["state"] == "no_answer" else None
        item = await s.eventually(ended, timeout=5)
        assert item["reason"] == "the device did not answer the write in time"
        assert item["devices"] == []


async def test_a_device_on_record_but_not_joined_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        esi = s.premises[0].esi_id
        assert await s.gw.store.add_device(esi_id=esi, eui64="001BC5000000DDDD", device_type="thermostat",
                                           party_id=None, now=s.gw.clock.now())
        r = await s.gw.client.put(f"/v1/premises/{esi}/devices/001BC5000000DDDD/{GROUP}", headers=s.gw.op,
                                  json={"utility_enrollment_group": 4})
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "device_not_joined"
        assert r.json()["errors"][0] == {"field": "eui64", "code": "device_not_joined", "value": "provision_requested",
                                         "message": "a device whose status is joined"}
        r = await s.gw.client.put(f"/v1/premises/{esi}/devices/001BC5000000CCCC/{GROUP}", headers=s.gw.op,
                                  json={"utility_enrollment_group": 4})
        assert (r.status_code, r.json()["code"]) == (404, "unknown_device")


def test_what_an_answer_says_of_a_write() -> None:
    ok = outcome("write_attributes_response", {"records": [{"status": 0}]}, requested=2)
    assert (ok.state, ok.detail) == ("written", None)
    some = outcome("write_attributes_response", {"records": [
        {"status": 0x87, "attribute_id": 1, "name": "start_randomization_minutes"}]}, requested=2)
    assert (some.state, some.detail) == ("partly_written", "start_randomization_minutes (0x0001): 0x87 INVALID_VALUE")
    none = outcome("write_attributes_response", {"records": [
        {"status": 0x86, "attribute_id": 0}, {"status": 0x5A, "attribute_id": 2}]}, requested=2)
    assert none.state == "refused"
    assert none.detail == ("utility_enrollment_group (0x0000): 0x86 UNSUPPORTED_ATTRIBUTE; "
                           "duration_randomization_minutes (0x0002): 0x5a (not a ZCL status)")
    refused = outcome("default_response", {"command_id": 0x02, "status": 0x82}, requested=1)
    assert (refused.state, refused.detail) == ("refused", "Write Attributes refused: 0x82 UNSUP_GENERAL_COMMAND")
