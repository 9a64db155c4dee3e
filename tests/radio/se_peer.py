"""A test-only SE client device speaking zigbee_se frames (until simulators' SimDevice is on
main): confirms messages, acknowledges prices, reports load-control event status."""

from __future__ import annotations

import asyncio
from typing import Any

from zigbee_se import decode_frame, encode_frame

TIME, PRICE, DRLC, MESSAGING, KEY_ESTABLISHMENT = 0x000A, 0x0700, 0x0701, 0x0703, 0x0800
EVENT_RECEIVED = 0x01


class SePeer:
    endpoint = 1
    profile_id = 0x0109
    device_type = 0x0501
    input_clusters = [TIME]  # noqa: RUF012 - descriptor data
    output_clusters = [PRICE, DRLC, MESSAGING, TIME]  # noqa: RUF012
    node_type = "router"

    def __init__(self, eui64: str, install_code: str, clock: int = 800_000_000) -> None:
        self.eui64 = eui64
        self.install_code = install_code
        self.clock = clock
        self.frames: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self.joined = asyncio.Event()
        self._uplink: Any = None
        self._tsn = 100

    def attach(self, uplink: Any) -> None:
        self._uplink = uplink

    def on_joined(self) -> None:
        self.joined.set()

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
                    "event_status": EVENT_RECEIVED,
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
