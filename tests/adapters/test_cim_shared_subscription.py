"""IEC 61968-9 over MQTT with several gateway instances (issue 14): the instances take the
head-end's EndDeviceEvents through an MQTT 5 shared subscription, so each event is handled by one
of them, and what the broker routed to an instance while it restarted reaches it when it is back.

Real Mosquitto, the CIM head-end emulator on a simulated fleet, two instances' transports (A and
B: one group, fixed client ids) and, as the witness of what the head-end published, a third
subscriber outside the group that gets every event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from ams_adapters.contract import ContractError
from ams_adapters.factory import AdapterConfig, make_transport
from ams_adapters.profiles import load_profile
from ams_adapters.transports.cim_mqtt import CimMqttTransport
from ams_adapters.wire.common import HeadEndRequest, HeadEndRequestKind, Notification
from gateway.config import ConfigError, parse_config
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from tests.adapters.harness import MQTT, QuickFleet

GROUP = "hangw-test"


def _text(i: int, esi_id: str) -> HeadEndRequest:
    return HeadEndRequest(
        transaction_id=f"tx-{uuid.uuid4().hex[:12]}", esi_id=esi_id, kind=HeadEndRequestKind.TEXT,
        expires_at=time.time() + 60, target="capable_devices", cluster_id=0x0703, command="display_message",
        fields={"message_id": i, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 30,
                "message": f"text {i}"})


async def _until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s")
        await asyncio.sleep(0.05)


async def test_each_event_is_handled_once_across_instances_and_none_is_lost_in_a_restart() -> None:
    profile = load_profile("centerpoint")
    assert profile.transport == "cim"
    clock = RealClock(seed=3)
    fleet = QuickFleet(6, clock)
    prefix = f"test/shared/{uuid.uuid4().hex[:8]}"
    headend = headend_for_profile(profile, fleet, clock, topic_prefix=prefix)
    await headend.start()
    seen: dict[str, Counter[Notification]] = {"a": Counter(), "b": Counter(), "witness": Counter()}

    def sink(name: str) -> Any:
        return seen[name].update

    def instance(name: str) -> CimMqttTransport:
        cfg = AdapterConfig(tdsp="centerpoint", host=MQTT[0], port=MQTT[1], topic_prefix=prefix,
                            client_id=f"{prefix}-{name}", share_group=GROUP, session_expiry_s=60)
        transport = make_transport(profile, cfg)
        assert isinstance(transport, CimMqttTransport)
        return transport

    witness = CimMqttTransport(MQTT[0], MQTT[1], prefix, client_id=f"{prefix}-witness", session_expiry_s=0)
    a, b = instance("a"), instance("b")
    assert a.events_filter == f"$share/{GROUP}/{prefix}/event/EndDeviceEvents"
    try:
        await witness.start(sink("witness"))
        await a.start(sink("a"))
        await b.start(sink("b"))
        esis = [fleet.esi_id(i) for i in range(6)]
        for esi in esis:
            fleet.install(esi)
        await asyncio.sleep(0.3)

        def handled() -> Counter[Notification]:
            return seen["a"] + seen["b"]

        # Both instances send; the events of either's transactions go to one of the two.
        for i in range(12):
            sender = a if i % 2 else b
            acks = await sender.send([_text(i, esis[i % len(esis)])])
            assert [ack.status.value for ack in acks] == ["ok"], acks
        await _until(lambda: len(seen["witness"]) >= 24 and handled() == seen["witness"])
        assert seen["a"] and seen["b"]  # shared: both take a part
        assert max(handled().values()) == 1  # and nothing twice

        # B restarts (same client id: its session, and its share, wait for it).
        await b.close()
        before = Counter(seen["b"])
        published = len(seen["witness"])
        for i in range(12, 24):
            assert [ack.status.value for ack in await a.send([_text(i, esis[i % len(esis)])])] == ["ok"]
        await _until(lambda: len(seen["witness"]) >= published + 24)
        await asyncio.sleep(0.3)  # the witness is complete; what B's session holds is not handled yet
        assert handled() != seen["witness"]
        b = instance("b")
        await b.start(sink("b"))
        await _until(lambda: handled() == seen["witness"])
        assert seen["b"] - before, "B got nothing that was routed to it while it was down"
        assert max(handled().values()) == 1
    finally:
        for transport in (a, b, witness):
            await transport.close()
        await headend.close()


def test_a_share_group_needs_a_fixed_client_id_and_a_valid_name() -> None:
    with pytest.raises(ContractError) as bad:
        CimMqttTransport("127.0.0.1", 1883, "p", share_group="g")
    assert bad.value.field == "client_id"
    with pytest.raises(ContractError) as bad:
        CimMqttTransport("127.0.0.1", 1883, "p", client_id="x", share_group="a/b")
    assert (bad.value.field, bad.value.value) == ("share_group", "a/b")
    cim = {"share_group": "gw", "host": "127.0.0.1", "port": 1883}
    with pytest.raises(ConfigError, match="client_id: '' is invalid: share_group needs a fixed client id"):
        parse_config({"routes": {"kind": "adapters", "tdsp": {"centerpoint": cim}}}, env={})
    with pytest.raises(ConfigError, match="share_group: 'g#' is invalid"):
        parse_config({"routes": {"kind": "adapters", "tdsp": {"centerpoint": {
            **cim, "share_group": "g#", "client_id": "gw-1"}}}}, env={})
    with pytest.raises(ConfigError, match="only the cim \\(MQTT\\) transport"):
        parse_config({"routes": {"kind": "adapters", "tdsp": {"oncor": {
            "share_group": "gw", "client_id": "gw-1", "url": "http://127.0.0.1:1"}}}}, env={})
    config = parse_config({"routes": {"kind": "adapters", "tdsp": {"centerpoint": {
        **cim, "client_id": "gw-1", "session_expiry_seconds": 600}}}}, env={})
    centerpoint = config.routes.tdsp.centerpoint
    assert centerpoint is not None and (centerpoint.share_group, centerpoint.session_expiry_seconds) == ("gw", 600)
