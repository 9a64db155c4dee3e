"""`hangw radio ports|info|form|backup|restore`: the coordinator and its network."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from gateway.cli.radio.session import EXIT_FAILED, EXIT_USAGE, Session, run, start_coordinator

# Heavy imports (zigpy, bellows, the store) stay inside the functions: hangw imports every CLI
# module at start (gateway/cli/__init__.py).


def cmd_ports(args: argparse.Namespace) -> int:
    import serialx

    ports = serialx.list_serial_ports()
    if not ports:
        print("no serial ports found")
        return EXIT_FAILED
    for port in ports:
        usb = (
            f"USB {port.vid:04x}:{port.pid:04x} {port.manufacturer or ''} {port.product or ''}"
            f" serial={port.serial_number or '-'}"
            if port.vid is not None and port.pid is not None
            else "no USB identity (built-in UART?)"
        )
        print(f"{port.device}\t{usb.strip()}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio.session import coordinator_info

        assert session.radio is not None
        info = await coordinator_info(session.radio)
        print(f"coordinator: {info['manufacturer']} {info['board']}")
        print(f"firmware: EmberZNet {info['firmware']}, EZSP protocol {info['ezsp_version']}")
        print(f"eui64: {info['eui64']}")
        net = info["network"]
        if net is None:
            print("network: none (run `hangw radio form`)")
        else:
            print(
                f"network: channel {net['channel']}, PAN {net['pan_id']}, "
                f"extended PAN {net['extended_pan_id']}, security level {net['security_level']}"
            )
        return 0

    return run(args, job)


def cmd_form(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import CoordinatorSession
        from ams_adapters.radio.session import coordinator_info

        assert session.radio is not None
        info = await coordinator_info(session.radio)
        if info["network"] is not None:
            net = info["network"]
            print(
                f"network already formed: channel {net['channel']}, PAN {net['pan_id']} "
                "(restore a backup or factory-reset the stick to start over)"
            )
            return 0
        assert session.radio is not None
        route = CoordinatorSession(session.radio, state=session.state)
        await route.start(form=True)
        try:
            _node, net = route.network_info()
            print(f"formed: channel {net.channel}, PAN 0x{int(net.pan_id):04X}, extended PAN {net.extended_pan_id}")
            print("keep a backup: hangw radio backup --out FILE")
        finally:
            await route.stop()
        return 0

    return run(args, job, channel=args.channel, pan_id=args.pan_id)


def cmd_backup(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        route = await start_coordinator(session)
        try:
            backup = await route.backup()
        finally:
            await route.stop()
        args.out.write_text(json.dumps(backup, indent=2))
        os.chmod(args.out, 0o600)  # it holds the network key
        print(f"backup written to {args.out} (contains the network key: keep it private)")
        return 0

    return run(args, job)


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        backup = json.loads(args.in_file.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: --in {args.in_file}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def job(session: Session) -> int:
        from ams_adapters.radio.session import coordinator_info, restore_backup

        assert session.radio is not None
        await restore_backup(session.radio, backup)
        info = await coordinator_info(session.radio)
        net = info["network"]
        print(f"restored: channel {net['channel']}, PAN {net['pan_id']}, coordinator eui64 {info['eui64']}")
        return 0

    return run(args, job)
