"""A tiny test-only in-home display: a byte-level peer with the SimDevice interface.

It speaks real ZCL bytes (Messaging cluster 0x0703): a Display Message is answered with a
Message Confirmation, as SE 1.x devices do when the message control asks for one. The frames are
laid out by hand here (SE_FRAMES.md §Messaging) so the emulator can be tested on its own; the
route's tests use the zigbee_se codec.
"""

from __future__ import annotations

import asyncio
import struct

MESSAGING = 0x0703
DISPLAY_MESSAGE = 0x00
MESSAGE_CONFIRMATION = 0x01
FC_CLUSTER_SERVER_TO_CLIENT = 0x09  # cluster-specific, server to client
FC_CLUSTER_CLIENT_TO_SERVER_NO_DEFAULT_RSP = 0x11  # cluster-specific, disable default response
CONFIRMATION_REQUIRED = 0x80


def display_message(tsn: int, message_id: int, text: str, *, confirm: bool = True) -> bytes:
    """ZCL Display Message: id, control, start time (now), duration, octet-string message."""
    body = text.encode()
    return (
        bytes([FC_CLUSTER_SERVER_TO_CLIENT, tsn, DISPLAY_MESSAGE])
        + struct.pack("<IBIH", message_id, CONFIRMATION_REQUIRED if confirm else 0, 0, 60)
        + bytes([len(body)])
        + body
    )


def message_confirmation(tsn: int, message_id: int, confirmation_time: int) -> bytes:
    return bytes([FC_CLUSTER_CLIENT_TO_SERVER_NO_DEFAULT_RSP, tsn, MESSAGE_CONFIRMATION]) + (
        struct.pack("<II", message_id, confirmation_time)
    )


class DisplayPeer:
    """An in-home display behind the emulated coordinator."""

    endpoint = 1
    profile_id = 0x0109
    device_type = 0x0502  # SE in-home display
    input_clusters = [0x000A]  # noqa: RUF012 - a descriptor, read by the emulator
    output_clusters = [0x0700, 0x0701, 0x0703, 0x000A]  # noqa: RUF012
    node_type = "router"

    def __init__(self, eui64: str, install_code: str | None, *, clock_s: int = 1000) -> None:
        self.eui64 = eui64
        self.install_code = install_code
        self.received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.joined = asyncio.Event()
        self._uplink = None
        self._clock_s = clock_s

    def attach(self, uplink) -> None:  # type: ignore[no-untyped-def]
        self._uplink = uplink

    def on_joined(self) -> None:
        self.joined.set()

    def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
        self.received.put_nowait((cluster_id, zcl_frame))
        fc, tsn, command = zcl_frame[0], zcl_frame[1], zcl_frame[2]
        if cluster_id == MESSAGING and fc & 0x03 == 0x01 and command == DISPLAY_MESSAGE:
            (message_id,) = struct.unpack_from("<I", zcl_frame, 3)
            control = zcl_frame[7]
            if control & CONFIRMATION_REQUIRED and self._uplink is not None:
                self.send(MESSAGING, message_confirmation(tsn, message_id, self._clock_s))

    def send(self, cluster_id: int, zcl_frame: bytes) -> bool:
        assert self._uplink is not None, "device has not joined"
        return bool(self._uplink(cluster_id, zcl_frame))
