"""`hangw sim ncp`: run the EZSP coordinator emulator for zigpy-based tools and the radio CLI.

    hangw sim ncp --pty [--link /tmp/ttyNCP]      # prints the pty path; bellows opens it
    hangw sim ncp --listen 127.0.0.1:9999         # a network coordinator: socket://127.0.0.1:9999
    hangw sim ncp --pty --device 00:0d:6f:00:0a:90:69:e7=83FED3407A939723A5C639B26916D505C3B5

Each `--device EUI64=INSTALL_CODE` is a simulated in-home display in pairing mode (the simulators'
firmware profile `silabs-ihd-drlc`): it joins the next time the coordinator permits joining (if its
code matches the key the gateway registered), registers with the ESI, confirms messages,
acknowledges prices and reports load-control event status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from sandbox.sim_group import sim_subparsers

DISPLAY_PROFILE = "silabs-ihd-drlc"


def register(subparsers: Any) -> None:
    parser = sim_subparsers(subparsers).add_parser(
        "ncp",
        help="emulated EZSP coordinator (EmberZNet 7.x, protocol 13) on a pty or TCP",
        description=__doc__.split("\n\n")[0],
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    where.add_argument("--listen", metavar="HOST:PORT", help="serve on TCP (socket://HOST:PORT)")
    parser.add_argument("--link", type=Path, help="with --pty: also create this symlink to it")
    parser.add_argument("--profile", default="emberznet-7.4-mg24", help="coordinator firmware profile name or file")
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="EUI64=INSTALL_CODE",
        help="a simulated display in pairing mode; after joining it registers with the ESI (repeatable)",
    )
    parser.add_argument("--baud", type=int, help="pace the line at this baud rate")
    parser.add_argument(
        "--time-poll",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="devices re-read the ESI's time this often (0: never)",
    )
    parser.set_defaults(func=_run)


def _parse_device(text: str) -> tuple[str, str]:
    eui64, sep, code = text.partition("=")
    if not sep or not eui64 or not code:
        raise ValueError(f"--device {text!r}: expected EUI64=INSTALL_CODE")
    return eui64.strip(), code.strip()


def _run(args: argparse.Namespace) -> int:
    # Imported when the command runs, not when `hangw` loads `register` (every start).
    from simulators.addressing import eui64_from_str
    from simulators.clock import RealClock
    from simulators.factory import make_device
    from simulators.ncp import LineFaults, NcpEmulator, ProfileError, load_profile
    from simulators.profiles import load_profiles
    from zigbee_se import InstallCodeError, parse_install_code

    try:
        profile = load_profile(args.profile)
        # Registers with the ESI after joining (Match_Desc, Bind_req), reads its time and asks
        # for what it missed; then re-reads the time every --time-poll seconds.
        display = dataclasses.replace(load_profiles()[DISPLAY_PROFILE], time_poll_s=max(0.0, args.time_poll))
        clock = RealClock()
        devices = []
        for text in args.device:
            eui64, code = _parse_device(text)
            devices.append(make_device(display, eui64_from_str(eui64), parse_install_code(code).code, clock))
    except (ProfileError, InstallCodeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        emulator = NcpEmulator(profile, faults=LineFaults(baudrate=args.baud))
        if args.pty:
            await emulator.serve_pty(args.link)
        else:
            host, _, port = args.listen.rpartition(":")
            await emulator.serve_tcp(host or "127.0.0.1", int(port))
        for device in devices:
            emulator.pair(device)
        print(f"coordinator: {profile.description} ({profile.manufacturer} {profile.board})")
        print(f"eui64: {profile.eui64}")
        print(f"device path: {emulator.path}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        seen = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            for eui64, result in emulator.ncp.join_log[seen:]:
                print(f"device {eui64}: {result.value}", flush=True)
            seen = len(emulator.ncp.join_log)
        await emulator.close()

    asyncio.run(serve())
    return 0
