"""The ESI's own answers to devices (SE_BEHAVIOUR.md): Time reads, GetLastMessage,
GetCurrentPrice, GetScheduledPrices, GetScheduledEvents and Default Responses.

The answers come from what this route has sent to each device (the last Display Message, the last
Publish Price, the load-control events not cancelled), so a device that rejoins or restarts gets
the gateway's state back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from zigbee_se import (
    DecodedFrame,
    DecodeError,
    Direction,
    FrameType,
    decode_frame,
    encode_frame,
    utc_from_datetime,
)

TIME, PRICE, DRLC, MESSAGING = 0x000A, 0x0700, 0x0701, 0x0703
STATUS_SUCCESS = 0x00
STATUS_NOT_FOUND = 0x8B
STATUS_UNSUPPORTED_ATTRIBUTE = 0x86
# Time Status of an ESI: Master (bit 0), MasterZoneDst (bit 2), Superseding (bit 3): SE 1.1 wants
# devices to prefer the ESI's time over any other source.
ESI_TIME_STATUS = 0x0D
UTC_TIME, BITMAP8 = 0xE2, 0x18

Reply = tuple[int, bytes]  # (cluster id, ZCL frame)
PREMISE = "*"  # state published to the ESI itself (contract target METER): every device sees it


@dataclasses.dataclass
class DeviceState:
    last_message: dict[str, Any] | None = None
    last_price: dict[str, Any] | None = None
    events: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EsiResponder:
    def __init__(self, clock: Callable[[], dt.datetime] = _now) -> None:
        self._clock = clock
        self.devices: dict[str, DeviceState] = {}

    def _state(self, eui64: str) -> DeviceState:
        return self.devices.setdefault(eui64, DeviceState())

    def observe_outbound(self, eui64: str, cluster_id: int, zcl_frame: bytes) -> None:
        """Remember what was delivered to a device, to answer its Get… requests later."""
        try:
            frame = decode_frame(cluster_id, zcl_frame)
        except DecodeError:
            return
        state = self._state(eui64)
        if frame.command == "display_message":
            state.last_message = frame.fields
        elif frame.command in ("cancel_message", "cancel_all_messages"):
            state.last_message = None
        elif frame.command == "publish_price":
            state.last_price = frame.fields
        elif frame.command == "load_control_event":
            state.events[frame.fields["issuer_event_id"]] = frame.fields
        elif frame.command == "cancel_load_control_event":
            state.events.pop(frame.fields["issuer_event_id"], None)
        elif frame.command == "cancel_all_load_control_events":
            state.events.clear()

    def _view(self, eui64: str) -> DeviceState:
        """What a device is answered from: its own state, else what was published premise-wide."""
        own = self._state(eui64)
        premise = self._state(PREMISE)
        return DeviceState(
            last_message=own.last_message or premise.last_message,
            last_price=own.last_price or premise.last_price,
            events={**premise.events, **own.events},
        )

    def answer(self, eui64: str, frame: DecodedFrame) -> list[Reply]:
        """The ESI's replies to one device frame (often none)."""
        cluster, tsn = frame.cluster, frame.tsn
        state = self._view(eui64)
        if frame.frame_type == FrameType.GLOBAL:
            if cluster == TIME and frame.command == "read_attributes":
                return [(TIME, self._time_response(tsn, frame.fields["attribute_ids"]))]
            return []
        command = frame.command
        if command == "get_last_message":
            if state.last_message is None:
                return [self._default(cluster, frame, STATUS_NOT_FOUND)]
            return [(MESSAGING, self._send(MESSAGING, "display_message", state.last_message, tsn))]
        if command in ("get_current_price", "get_scheduled_prices"):
            if state.last_price is None:
                return [self._default(cluster, frame, STATUS_NOT_FOUND)]
            return [(PRICE, self._send(PRICE, "publish_price", state.last_price, tsn))]
        if command == "get_scheduled_events":
            if not state.events:
                return [self._default(cluster, frame, STATUS_NOT_FOUND)]
            wanted = frame.fields.get("number_of_events") or len(state.events)
            events = sorted(state.events.values(), key=lambda e: (e["start_time"], e["issuer_event_id"]))
            return [(DRLC, self._send(DRLC, "load_control_event", e, tsn)) for e in events[:wanted]]
        if command in ("message_confirmation", "price_acknowledgement", "report_event_status"):
            if frame.disable_default_response:
                return []
            return [self._default(cluster, frame, STATUS_SUCCESS)]
        return []

    def _send(self, cluster: int, command: str, fields: dict[str, Any], tsn: int) -> bytes:
        return encode_frame(cluster, command, fields, tsn=tsn)

    def _default(self, cluster: int, frame: DecodedFrame, status: int) -> Reply:
        return (
            cluster,
            encode_frame(
                cluster,
                "default_response",
                {"command_id": frame.command_id, "status": status},
                tsn=frame.tsn,
                direction=Direction.SERVER_TO_CLIENT,
                disable_default_response=True,
            ),
        )

    def _time_response(self, tsn: int, attribute_ids: list[int]) -> bytes:
        records = []
        for attribute_id in attribute_ids:
            if attribute_id == 0x0000:
                value = utc_from_datetime(self._clock())
                records.append({"attribute_id": 0, "status": 0, "data_type": UTC_TIME, "value": value})
            elif attribute_id == 0x0001:
                records.append({"attribute_id": 1, "status": 0, "data_type": BITMAP8, "value": ESI_TIME_STATUS})
            else:
                records.append({"attribute_id": attribute_id, "status": STATUS_UNSUPPORTED_ATTRIBUTE})
        return encode_frame(
            TIME,
            "read_attributes_response",
            {"records": records},
            tsn=tsn,
            direction=Direction.SERVER_TO_CLIENT,
            disable_default_response=True,
        )
