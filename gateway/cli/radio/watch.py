"""`hangw radio watch`: decoded device traffic, live."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from gateway.cli.radio.session import Session, run, start_coordinator

# Heavy imports (zigpy, bellows, the store) stay inside the functions: hangw imports every CLI
# module at start (gateway/cli/__init__.py).


def _stamp() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def cmd_watch(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import (
            CbkeRequested,
            CoordinatorReachable,
            CoordinatorUnreachable,
            DeviceBound,
            DeviceFrame,
            DeviceJoined,
            DeviceLeft,
        )

        route = await start_coordinator(session)
        print(f"{_stamp()} watching {args.device or 'the coordinator'} (Ctrl-C to stop)", flush=True)
        loop = asyncio.get_running_loop()
        end = None if args.seconds is None else loop.time() + args.seconds
        try:
            while end is None or loop.time() < end:
                try:
                    event = await route.next_event(None if end is None else end - loop.time())
                except TimeoutError:
                    break
                if isinstance(event, DeviceFrame):
                    what = event.command or f"undecodable ({event.decode_error})"
                    fields = json.dumps(event.fields, default=str) if event.fields else ""
                    lock = "" if event.aps_encrypted else " NOT APS-ENCRYPTED"
                    print(
                        f"{_stamp()} {event.eui64} 0x{event.cluster_id:04X} {what} {fields} lqi={event.lqi}{lock}",
                        flush=True,
                    )
                elif isinstance(event, DeviceJoined | DeviceLeft):
                    verb = "joined" if isinstance(event, DeviceJoined) else "left"
                    print(f"{_stamp()} {event.eui64} {verb}", flush=True)
                elif isinstance(event, DeviceBound):
                    verb = "bound" if event.bound else "unbound"
                    print(f"{_stamp()} {event.eui64} {verb} cluster 0x{event.cluster_id:04X} to the ESI", flush=True)
                elif isinstance(event, CbkeRequested):
                    print(f"{_stamp()} {event.eui64} asked for CBKE: not supported", flush=True)
                elif isinstance(event, CoordinatorUnreachable | CoordinatorReachable):
                    print(f"{_stamp()} coordinator {type(event).__name__[11:].lower()}", flush=True)
        finally:
            await route.stop()
        return 0

    return run(args, job)
