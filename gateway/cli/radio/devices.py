"""`hangw radio provision|devices|remove|decommission`: the HAN's membership and inventory."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from gateway.cli.radio.session import EXIT_FAILED, EXIT_USAGE, Session, run, start_coordinator

# Heavy imports (zigpy, bellows, the store) stay inside the functions: hangw imports every CLI
# module at start (gateway/cli/__init__.py).


def cmd_provision(args: argparse.Namespace) -> int:
    from zigbee_se import InstallCodeError, parse_install_code

    try:  # validate on entry, before touching the radio
        code = parse_install_code(args.install_code)
    except InstallCodeError as exc:
        print(f"error: --install-code: {exc.reason}", file=sys.stderr)
        return EXIT_USAGE
    print(f"install code {code.normalized}: CRC ok")

    async def job(session: Session) -> int:
        from ams_adapters.radio import DeviceJoined

        route = await start_coordinator(session)
        try:
            task = asyncio.create_task(route.provision_device(args.eui64, args.install_code, args.timeout))
            started = time.monotonic()
            while not task.done():
                left = args.timeout - (time.monotonic() - started)
                print(f"waiting for {args.eui64} to join: {max(left, 0):.0f}s left", flush=True)
                await asyncio.wait({task}, timeout=min(5.0, max(left, 0.1)))
            result = task.result()
        finally:
            await route.stop()
        if isinstance(result, DeviceJoined):
            print(f"joined: {result.eui64} as 0x{result.nwk:04X}")
            return 0
        print(f"not joined: {result.reason}")
        return EXIT_FAILED

    return run(args, job, inventory=True)


def cmd_devices(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        assert session.state is not None
        devices = await session.state.devices(include_removed=args.all)
        if not devices:
            print("no devices")
        for d in devices:
            when = dt.datetime.fromtimestamp(d.updated_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            nwk = f"nwk 0x{d.nwk:04X}" if d.nwk is not None else "nwk -"
            reason = f"\t{d.reason}" if d.reason else ""
            print(f"{d.eui64}\t{d.state.value}\t{nwk}\t{d.device_type or 'unknown'}\t{when}{reason}")
        return 0

    return run(args, job, coordinator=False, inventory=True)


def cmd_remove(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import DeviceLeft

        route = await start_coordinator(session)
        try:
            if args.eui64 not in {d.eui64 for d in await route.inventory()}:
                print(f"{args.eui64} is not in this HAN")
                return EXIT_FAILED
            await route.remove_device(args.eui64)
            try:
                async with asyncio.timeout(10):
                    while True:
                        event = await route.next_event()
                        if isinstance(event, DeviceLeft) and event.eui64 == args.eui64:
                            break
            except TimeoutError:
                print(f"{args.eui64} forgotten (it did not confirm leaving within 10s)")
                return 0
        finally:
            await route.stop()
        print(f"{args.eui64} left the HAN")
        return 0

    return run(args, job, inventory=True)


def cmd_decommission(args: argparse.Namespace) -> int:
    if not args.yes:
        prompt = (
            f"decommission the HAN{' of ' + args.esi_id if args.esi_id else ''}: every device is asked to leave and "
            "the coordinator forgets the network (keys, PAN). Continue? [y/N] "
        )
        try:
            answer = input(prompt)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not decommissioned")
            return EXIT_FAILED

    async def job(session: Session) -> int:
        route = await start_coordinator(session)
        try:
            removed = await route.decommission()
        finally:
            await route.stop()
        for eui64 in removed:
            print(f"{eui64} asked to leave; removed from the inventory")
        print(f"decommissioned: {len(removed)} device(s) removed, coordinator has no network")
        print("form a new HAN with `hangw radio form` (or restore a backup) to start again")
        return 0

    return run(args, job, inventory=True)
