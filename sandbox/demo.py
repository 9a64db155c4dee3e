"""`hangw demo`: the whole gateway on one machine, no setup, every kind of route at work. SQLite in a
data directory; behind the gateway, one emulated head-end per TDSP reached through the real AMS adapters
(MultiSpeak, IEC 61968-9 over MQTT, binary) and the gateway's own radio against the EZSP coordinator
emulator (sandbox/demo_field.py); the API on localhost. Then a walkthrough over the real API: an
operator loads premises, registers a third party, the third party invites a customer who accepts by
the emailed link, provisions the customer's display on the radio premise, and sends a text, a price
and a load-control event to one premise per route, showing each device's answer as it arrives and the
route it came through. Then the server keeps running with the token printed, for trying the API with
curl. `--once` runs the walkthrough and exits 0 only if every step got its expected answers.

A part that needs a service which is not running (the MQTT broker of the 61968-9 head-ends) is left
out with one line saying so; the rest runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the gateway with emulated head-ends (MultiSpeak, IEC 61968-9, binary) and its "
        "radio, and walk through the API (text, price, load control); then keep serving")
    parser.add_argument("--once", action="store_true", help="run the walkthrough and exit: 0 only if "
                        "every step got its expected answers")
    parser.add_argument("--data-dir", type=Path, default=Path("hangw-demo"),
                        help="the demo's own directory (emptied at start; default ./hangw-demo)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--per-tdsp", type=int, default=8, help="simulated premises per TDSP (default 8)")
    parser.add_argument("--mqtt", metavar="HOST:PORT", default="127.0.0.1:1883",
                        help="the MQTT broker of the IEC 61968-9 head-ends (default 127.0.0.1:1883; without a "
                        "broker there they are left out)")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    # The walkthrough (uvicorn, the gateway app, the simulators) loads only when the demo runs.
    from sandbox.demo_walkthrough import run_demo

    host, _, port = args.mqtt.rpartition(":")
    if not port.isdigit():
        print(f"--mqtt: {args.mqtt!r} is not HOST:PORT", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(args.data_dir, args.port, args.per_tdsp, once=args.once,
                                    mqtt=(host or "127.0.0.1", int(port))))
    except KeyboardInterrupt:
        return 0
