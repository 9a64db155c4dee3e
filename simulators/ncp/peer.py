# mypy: disable-error-code="no-untyped-call"
# (zigpy's ZDO types and (de)serializers carry no annotations.)
"""A small SE client device behind the emulated coordinator, speaking zigbee_se frames.

It confirms Display Messages that ask for it, acknowledges prices whose Price Control asks for
it and reports "event received" for load-control events. It is what `hangw sim ncp --device` puts
in the HAN and what the radio tests use; the simulators package's SimDevice family (in-home
display, thermostat, load control device) has the same interface and fuller behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from zigbee_se import SE_PROFILE_ID, EventStatus, decode_frame, encode_frame, utc_from_datetime

TIME, PRICE, DRLC, MESSAGING, KEY_ESTABLISHMENT = 0x000A, 0x0700, 0x0701, 0x0703, 0x0800


class SePeer:
    """An in-home-display-like SE client (Price, DRLC, Messaging client; Time client)."""

    endpoint = 1
    profile_id = SE_PROFILE_ID
    device_type = 0x0501
    input_clusters = [TIME]  # noqa: RUF012 - descriptor data
    output_clusters = [PRICE, DRLC, MESSAGING, TIME]  # noqa: RUF012
    node_type = "router"

    def __init__(
        self,
        eui64: str,
        install_code: str,
        clock: int | None = None,
        *,
        register: bool = False,
        time_poll_s: float | None = None,
        bind: bool = False,
    ) -> None:
        self.eui64 = eui64
        self.install_code = install_code
        self._fixed_clock = clock
        # After joining, ask the ESI for the time and for what it missed (SE_BEHAVIOUR.md 2.2:
        # GetScheduledEvents, GetCurrentPrice, GetLastMessage), and re-read the time periodically.
        self.register = register
        self.time_poll_s = time_poll_s
        # SE registration (SE_BEHAVIOUR.md §6): find the ESI by Match_Desc for the DRLC server,
        # then ask it to bind each SE client cluster to us, for unsolicited updates.
        self.bind = bind
        self.esi_endpoints: list[int] = []
        self.bind_results: dict[int, int] = {}  # cluster -> ZDO status of its Bind_rsp
        self.registered = asyncio.Event()
        self._zdo_uplink: Any = None
        self._coordinator: zt.EUI64 | None = None
        self._zdo_answers: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._poller: asyncio.Task[None] | None = None
        self.frames: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self.joined = asyncio.Event()
        self._uplink: Any = None
        self._tsn = 100

    def attach(self, uplink: Any) -> None:
        self._uplink = uplink

    def attach_zdo(self, uplink: Any, coordinator_eui64: Any) -> None:
        """ZDO to the coordinator; its EUI-64 is the trust center's, learnt while joining."""
        self._zdo_uplink = uplink
        self._coordinator = zt.EUI64(coordinator_eui64)

    def deliver_zdo(self, cluster_id: int, payload: bytes) -> None:
        self._zdo_answers.put_nowait((cluster_id, payload))

    def on_joined(self) -> None:
        self.joined.set()
        if (self.register or self.time_poll_s or self.bind) and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._talk())

    def _zdo(self, command: zdo_t.ZDOCmd, *values: Any) -> int:
        self._tsn = (self._tsn + 1) % 256
        self._zdo_uplink(int(command), bytes([self._tsn]) + zt.serialize(list(values), zdo_t.CLUSTERS[command][1]))
        return self._tsn

    async def _zdo_answer(self, command: zdo_t.ZDOCmd, tsn: int, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                cluster, payload = await self._zdo_answers.get()
                if cluster == command and payload[0] == tsn:
                    values, _ = zt.deserialize(payload[1:], zdo_t.CLUSTERS[command][1])
                    return list(values)

    async def _register_with_esi(self) -> None:
        everyone = zt.NWK(0xFFFD)  # rx-on-when-idle broadcast
        tsn = self._zdo(zdo_t.ZDOCmd.Match_Desc_req, everyone, SE_PROFILE_ID, [DRLC], [])
        _status, _nwk, matches = await self._zdo_answer(zdo_t.ZDOCmd.Match_Desc_rsp, tsn)
        self.esi_endpoints = [int(ep) for ep in matches]
        if not self.esi_endpoints or self._coordinator is None:
            return  # no ESI in this HAN
        own = zt.EUI64.convert(self.eui64) if isinstance(self.eui64, str) else zt.EUI64(self.eui64)
        for cluster in (PRICE, DRLC, MESSAGING):
            if cluster not in self.output_clusters:
                continue
            dst = zdo_t.MultiAddress()
            dst.addrmode, dst.ieee, dst.endpoint = zt.uint8_t(3), own, zt.uint8_t(self.endpoint)
            tsn = self._zdo(zdo_t.ZDOCmd.Bind_req, self._coordinator, self.esi_endpoints[0], cluster, dst)
            # "send the bindings, but don't pay attention to whether it works" (SL registration)
            with contextlib.suppress(TimeoutError):
                [status] = await self._zdo_answer(zdo_t.ZDOCmd.Bind_rsp, tsn)
                self.bind_results[cluster] = int(status)
        self.registered.set()

    async def _talk(self) -> None:
        await asyncio.sleep(0.5)  # the ESI interviews the device first
        if self.bind:
            await self._register_with_esi()
        if self.register:
            self.send(TIME, "read_attributes", {"attribute_ids": [0, 1]})
            self.send(DRLC, "get_scheduled_events", {"start_time": 0, "number_of_events": 0})
            self.send(PRICE, "get_current_price", {"command_options": 0})
            self.send(MESSAGING, "get_last_message", {})
        while self.time_poll_s:
            await asyncio.sleep(self.time_poll_s)
            self.send(TIME, "read_attributes", {"attribute_ids": [0, 1]})

    @property
    def clock(self) -> int:
        """UTCTime the device stamps its answers with: fixed if given, else the real time."""
        if self._fixed_clock is not None:
            return self._fixed_clock
        return utc_from_datetime(dt.datetime.now(dt.UTC))

    def send(self, cluster: int, command: str, fields: dict[str, Any]) -> int:
        self._tsn = (self._tsn + 1) % 256
        self._uplink(cluster, encode_frame(cluster, command, fields, tsn=self._tsn))
        return self._tsn

    def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
        frame = decode_frame(cluster_id, zcl_frame)
        self.frames.put_nowait((cluster_id, frame))
        reply: tuple[str, dict[str, Any]] | None = None
        if frame.command == "display_message" and frame.fields["message_control"] & 0x80:
            reply = (
                "message_confirmation",
                {"message_id": frame.fields["message_id"], "confirmation_time": self.clock},
            )
        elif frame.command == "publish_price" and frame.fields.get("price_control", 0) & 0x01:
            reply = (
                "price_acknowledgement",
                {
                    "provider_id": frame.fields["provider_id"],
                    "issuer_event_id": frame.fields["issuer_event_id"],
                    "price_ack_time": self.clock,
                    "control": frame.fields["price_control"],
                },
            )
        elif frame.command == "load_control_event":
            reply = (
                "report_event_status",
                {
                    "issuer_event_id": frame.fields["issuer_event_id"],
                    "event_status": EventStatus.RECEIVED,
                    "event_status_time": self.clock,
                    "criticality_level_applied": frame.fields["criticality_level"],
                    "event_control": 0,
                    "signature_type": 0,
                    "signature": bytes(42),
                },
            )
        if reply is not None:
            frame_out = encode_frame(cluster_id, reply[0], reply[1], tsn=frame.tsn)
            self._uplink(cluster_id, frame_out)
