"""SE frames delivered and acknowledged per second through bellows and the NCP emulator, against
the serial line's own limit for the same exchange.

    python -m benchmarks.radio [--frames 200] [--baud 115200] [--no-thread]

The emulator paces its line at the baud rate (10 bits a byte) in both directions. Each delivery is
one Display Message sent as the radio route sends it (`app.request`, APS encryption, APS ACK, no
retries) and waited for until bellows has its messageSentHandler; one frame is in flight at a time.
The bytes that crossed the line during the run (commands, responses, ASH ACKs, callbacks, in both
directions) are counted, and their time on the wire, back to back, is the limit: nothing can be
faster than the line. The last line is `radio ratio vs line rate: X` = wire time / measured time
(the issue's bar is 0.5); what remains is bellows', zigpy's and the emulator's processing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from typing import Any

import zigpy.types as zt
from bellows.zigbee.application import ControllerApplication

from simulators.ncp import JoinResult, LineFaults, NcpEmulator, load_profile
from simulators.ncp.link import BITS_PER_BYTE
from zigbee_se import encode_frame

EUI = "00:0d:6f:00:0a:90:69:e7"
CODE = "83FED3407A939723A5C639B26916D505C3B5"
ESI_ENDPOINT = 10


class Display:
    """A display that only receives (no confirmation asked): the exchange is the delivery alone."""

    endpoint = 1
    install_code = CODE
    eui64 = EUI
    output_clusters = (0x0703,)

    def __init__(self) -> None:
        self.received = 0

    def attach(self, uplink: Any) -> None:
        self.uplink = uplink

    def on_joined(self) -> None:
        return None

    def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
        self.received += 1


def config(path: str, use_thread: bool) -> dict[str, Any]:
    return {
        "device": {"path": path},
        "database_path": None,
        "network": {"channel": 15},
        "ota": {"enabled": False},
        "backup_enabled": False,
        "topology_scan_enabled": False,
        "use_thread": use_thread,
        "additional_endpoints": [
            {"endpoint": ESI_ENDPOINT, "profile": 0x0109, "device_type": 0x0500,
             "device_version": 0, "input_clusters": [0x0703], "output_clusters": []}
        ],
    }


async def run(frames: int, baud: int, use_thread: bool) -> None:
    profile = load_profile()
    # Form once on an unpaced line, then measure on the paced one with the same NCP flash.
    clean = NcpEmulator(profile)
    await clean.serve_pty()
    app = await ControllerApplication.new(config(clean.path, False), auto_form=True)
    await app.shutdown()
    await clean.close()

    emu = NcpEmulator(profile, faults=LineFaults(baudrate=baud), nvram=clean.ncp.nvram)
    await emu.serve_pty()
    app = await ControllerApplication.new(config(emu.path, use_thread), auto_form=False)
    try:
        display = Display()
        await app.permit_with_link_key(
            zt.EUI64.convert(EUI), zt.KeyData(bytes.fromhex("66b6900981e1ee3ca4206b6b861c02bb"))
        )
        if emu.join(display) is not JoinResult.JOINED:
            raise SystemExit("the display did not join")
        await asyncio.sleep(0.5)  # let zigpy finish its interview of the device
        device = app.get_device(ieee=zt.EUI64.convert(EUI))
        payloads = [
            encode_frame("messaging", "display_message", {
                "message_id": i, "message_control": 0x00, "start_time": 0,
                "duration_in_minutes": 60, "message": f"Peak pricing today, message {i:05d}"},
                tsn=i % 256)
            for i in range(frames)
        ]
        assert emu.line is not None
        before = emu.line.counters.bytes_to_host + emu.line.counters.bytes_to_ncp
        start = time.perf_counter()
        for i, payload in enumerate(payloads):
            await app.request(
                device, 0x0109, 0x0703, ESI_ENDPOINT, 1, i % 256, payload,
                expect_reply=False, ask_for_ack=True, aps_encryption=True,
            )
        elapsed = time.perf_counter() - start
        moved = emu.line.counters.bytes_to_host + emu.line.counters.bytes_to_ncp - before
    finally:
        with contextlib.suppress(Exception):
            await app.shutdown()
        await emu.close()

    if display.received != frames:
        raise SystemExit(f"device received {display.received} of {frames} frames")
    wire = moved * BITS_PER_BYTE / baud
    print(f"frames delivered and APS-acknowledged: {frames} in {elapsed:.3f} s")
    print(f"measured: {frames / elapsed:.1f} frames/s ({1000 * elapsed / frames:.2f} ms/frame)")
    print(f"line bytes per delivery, both directions: {moved / frames:.1f} at {baud} baud")
    print(f"line limit: {frames / wire:.1f} frames/s ({1000 * wire / frames:.2f} ms/frame)")
    print(f"bellows serial thread: {'on' if use_thread else 'off'}")
    print(f"radio ratio vs line rate: {wire / elapsed:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--no-thread", action="store_true", help="bellows I/O on the main loop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(args.frames, args.baud, not args.no_thread))


if __name__ == "__main__":
    main()
