"""Which HAN operations each head-end transport carries (`RouteCapabilities.operations`): a device
write (set_enrollment_group: ZCL Write Attributes to one device) only where the gateway's frame
travels raw to a device — the binary protocol — and never over MultiSpeak or IEC 61968-9, which
have no semantic call for it. Against the TDSPs' emulated head-ends over real sockets (and the real
Mosquitto for 61968-9): the binary head-end hands the frame to the one device and relays its answer
on the write's own transaction; the others' adapters refuse the write themselves."""

from __future__ import annotations

import uuid

import pytest

from ams_adapters.contract import (
    ALL_OPERATIONS,
    MESSAGE_OPERATIONS,
    DeviceResponse,
    HanOperation,
    OperationKind,
    SubmitOutcome,
    Target,
    TargetKind,
)
from ams_adapters.profiles import TRANSPORTS, load_profile
from simulators.addressing import eui64_str
from tests.adapters.harness import rig
from zigbee_se import SEVersion


def _write(esi: str, eui64: str, group: int, tsn: int) -> HanOperation:
    # No frame: the binary adapter encodes it (server -> client, the given sequence number).
    fields = {"records": [{"attribute_id": 0x0000, "data_type": 0x20, "value": group}]}
    return HanOperation(uuid.uuid4().hex, esi, Target(TargetKind.DEVICE, eui64), OperationKind.SET_ENROLLMENT_GROUP,
                        0x0701, "write_attributes", fields, SEVersion.V1_1, expires_at=9e9, tsn=tsn)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_only_the_binary_transport_declares_device_writes(transport: str) -> None:
    caps = load_profile("tnmp").with_transport(transport).route_capabilities()
    assert caps.operations == (ALL_OPERATIONS if transport == "binary" else MESSAGE_OPERATIONS)
    assert caps.operations >= MESSAGE_OPERATIONS


async def test_a_binary_head_end_writes_to_one_device_and_relays_its_answer() -> None:
    async with rig("tnmp", meters=2) as r:
        esi = r.fleet.esi_id(0)
        r.fleet.install(esi)
        ihd, pct = r.fleet.devices(esi)
        await r.until(lambda: len(r.fleet.meter(esi).devices) == 2)
        before = ihd.frames_in
        operation = _write(esi, eui64_str(pct.eui64), 9, tsn=0x5A)
        [result] = await r.adapter.submit([operation])
        assert result.outcome is SubmitOutcome.ACCEPTED, result
        [answer] = await r.wait_for(
            lambda e: isinstance(e, DeviceResponse) and e.command == "write_attributes_response")
        assert isinstance(answer, DeviceResponse)
        assert answer.outbound_id == operation.outbound_id  # tied to the write by its sequence number
        assert answer.frame is not None and answer.frame[1] == 0x5A and answer.eui64 == eui64_str(pct.eui64)
        assert pct.drlc is not None and pct.drlc.ueg == 9
        assert ihd.frames_in == before  # only the one device got it


@pytest.mark.parametrize("tdsp", ["oncor", "aep_north"])  # MultiSpeak, IEC 61968-9 over MQTT
async def test_semantic_head_ends_refuse_a_device_write_themselves(tdsp: str) -> None:
    async with rig(tdsp, meters=1) as r:
        esi = r.fleet.esi_id(0)
        [result] = await r.adapter.submit([_write(esi, "00:1b:c5:00:00:00:00:01", 9, tsn=1)])
        assert result.outcome is SubmitOutcome.REJECTED
        assert result.reason is not None and "set_enrollment_group is not carried by the" in result.reason
        assert r.core.meter_deliveries.total() == 0
