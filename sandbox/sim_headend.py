"""`hangw sim headend --tdsp oncor --listen HOST:PORT`: run a TDSP's emulated head-end as a process,
serving a fleet of simulated premises on the wall clock, for integration work against the adapters.

MultiSpeak and binary head-ends listen on HOST:PORT; the 61968-9 head-end connects to the MQTT
broker at HOST:PORT (default 127.0.0.1:1883) under --prefix. The simulators are imported when the
command runs, not when `hangw` loads this module's `register` (every start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

from ams_adapters.profiles import TDSPS
from gateway.domain.esi_id import TDSP_PREFIXES, Tdsp
from sandbox.sim_group import sim_subparsers


def register(subparsers: Any) -> None:
    parser = sim_subparsers(subparsers).add_parser(
        "headend", help="emulated TDSP head-end (MultiSpeak, IEC 61968-9 over MQTT, or binary/TCP)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--tdsp", required=True,
                        choices=TDSPS)
    parser.add_argument("--transport", choices=["multispeak", "cim", "binary"],
                        help="override the TDSP profile's transport (AEP companies take theirs from config)")
    parser.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:0",
                        help="where to serve (MultiSpeak, binary) or the MQTT broker (61968-9)")
    parser.add_argument("--prefix", default="hangw", help="61968-9: MQTT topic prefix")
    parser.add_argument("--meters", type=int, default=1000, help="simulated premises (materialized lazily)")
    parser.add_argument("--install", type=int, default=0, metavar="N",
                        help="technician visits at the first N premises (HAN init, devices joined)")
    parser.add_argument("--auto-join", action="store_true",
                        help="a premise's own device, once provisioned, joins 0.5 s later (the customer "
                             "presses its button)")
    parser.add_argument("--faults", default="", metavar="NAME=RATE,…",
                        help="fault injection, e.g. error_rate=0.1,drop_callback_rate=0.05")
    parser.add_argument("--tls-cert", help="MultiSpeak: serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="MultiSpeak: the certificate's PEM private key")
    parser.add_argument("--callback-ca", help="MultiSpeak: CA bundle that signs the gateway's https:// "
                        "callback endpoint (NOT_Server)")
    parser.add_argument("--callback-retry-seconds", type=float, default=None, metavar="S",
                        help="MultiSpeak: retry a NOT_Server callback that fails (refused, timeout, not 200) with "
                             "backoff for this long before giving it up (default 120)")
    parser.add_argument("--callback-url", action="append", default=[], metavar="URL",
                        help="MultiSpeak: a further NOT_Server endpoint, tried in turn after a request's "
                             "responseURL fails (repeatable; several gateway instances without a load balancer)")
    parser.add_argument("--esi-prefix", default="",
                        help="ESI IDs of the simulated premises start with this (default: Oncor's 1044372; "
                             "give the TDSP's prefix so `hangw serve` routes them to this head-end); they are "
                             "numbered to that TDSP's length (17 digits, CenterPoint's 22)")
    parser.add_argument("--counts-file", metavar="PATH",
                        help="on stop, write what reached the meters as JSON: frames by ESI ID, SE command and "
                             "message/event id, and texts by ESI ID and words (what a crash test counts)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until ^C)")
    parser.set_defaults(func=_run)


def _parse_faults(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--faults: {part!r} is not NAME=RATE")
        try:
            out[name] = float(value)
        except ValueError:
            raise SystemExit(f"--faults: {name}={value!r} is not a number") from None
    return out


class EsiPrefixError(ValueError):
    """A --esi-prefix that cannot number valid ESI IDs: names the value and the limit."""

    def __init__(self, value: str, limit: str) -> None:
        super().__init__(f"--esi-prefix: {value!r} is invalid: {limit}")


def esi_id_layout(prefix: str, meters: int) -> tuple[Tdsp, int]:
    """The TDSP whose ESI IDs start with `prefix` and their length, checked against DOMAIN.md's
    prefixes (gateway.domain.esi_id) so every id the head-end makes is one the gateway accepts."""
    if not (prefix.isascii() and prefix.isdigit()):
        raise EsiPrefixError(prefix, "digits only, starting with a TDSP's 7-digit prefix")
    row = next((r for r in TDSP_PREFIXES if prefix.startswith(r.prefix)), None)
    if row is None:
        known = ", ".join(f"{r.prefix} ({r.tdsp.value})" for r in TDSP_PREFIXES)
        raise EsiPrefixError(prefix, f"matches no TDSP: it must start with a TDSP's 7-digit prefix (known: {known})")
    digits = row.length - len(prefix)
    if digits < 1 or meters > 10**digits:
        need = len(str(max(meters - 1, 0)))
        raise EsiPrefixError(prefix, f"{row.tdsp.value} ESI IDs have {row.length} digits: this prefix leaves "
                             f"{max(digits, 0)} digits to number premises and --meters {meters} needs {need}; "
                             f"a {row.length}-digit ESI ID cannot be longer")
    return row.tdsp, row.length


def _run(args: argparse.Namespace) -> int:
    if args.esi_prefix:
        try:
            args.esi_tdsp, args.esi_length = esi_id_layout(args.esi_prefix, args.meters)
        except EsiPrefixError as exc:
            print(f"error: {exc}")
            return 2
    host, _, port_text = args.listen.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        print(f"--listen: {args.listen!r} is not HOST:PORT")
        return 2
    try:
        asyncio.run(_serve(args, host or "127.0.0.1", port))
    except ValueError as exc:  # a bad profile or fault value names field, value and limit
        print(f"error: {exc}")
        return 2
    return 0


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    from ams_adapters.profiles import load_profile
    from sandbox.headends import headend_for_profile
    from sandbox.simfield import FrameCounter
    from simulators.clock import RealClock
    from simulators.fleet import Fleet
    from simulators.headends.faults import Faults

    profile = load_profile(args.tdsp)
    if args.transport:
        profile = profile.with_transport(args.transport)
    clock = RealClock()
    fleet = (Fleet(args.meters, clock, esi_prefix=args.esi_prefix, esi_length=args.esi_length)
             if args.esi_prefix else Fleet(args.meters, clock))
    for i in range(min(args.install, args.meters)):
        fleet.install(fleet.esi_id(i))
    counter = FrameCounter(fleet) if args.counts_file else None
    faults = Faults.from_mapping(_parse_faults(args.faults))
    if args.auto_join:
        from simulators.meter import HanEvent

        def press_button(event: object) -> None:
            if isinstance(event, HanEvent) and event.kind == "provisioned" and event.eui64 is not None:
                for dev in fleet.devices(event.meter_id):
                    if dev.eui64 == event.eui64:
                        clock.call_later(0.5, fleet.meter(event.meter_id).join, dev)

        fleet.subscribe(press_button)
    cim = profile.transport == "cim"
    tls = None
    if args.tls_cert:
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    callback_tls = None
    if args.callback_ca:
        import ssl

        callback_tls = ssl.create_default_context(cafile=args.callback_ca)
    headend = headend_for_profile(profile, fleet, clock, host=host, port=port, mqtt_host=host,
                           mqtt_port=port or 1883, topic_prefix=args.prefix, faults=faults, ssl_context=tls,
                           callback_ssl_context=callback_tls, callback_retry_s=args.callback_retry_seconds,
                           callback_urls=tuple(args.callback_url))
    await headend.start()
    if cim:
        where = f"mqtt://{host}:{port or 1883} prefix {args.prefix}"
    elif profile.transport == "multispeak":
        where = f"{'https' if tls else 'http'}://{host}:{headend.port}/HAN_Server"  # type: ignore[attr-defined]
    else:
        where = f"tcp://{host}:{headend.port}"  # type: ignore[attr-defined]
    print(f"headend {profile.tdsp} ({profile.transport}) serving {args.meters} premises at {where}", flush=True)
    print(f"ESI IDs {fleet.esi_id(0)} to {fleet.esi_id(args.meters - 1)}; {args.install} premises installed",
          flush=True)
    if args.esi_prefix and args.esi_tdsp.value != profile.tdsp:
        print(f"note: these are {args.esi_tdsp.value} ESI IDs: `hangw serve` sends their premises to "
              f"[routes.tdsp.{args.esi_tdsp.value}], not to this {profile.tdsp} head-end", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.duration or None):
            await stop.wait()
    await headend.close()
    if counter is not None:
        Path(args.counts_file).write_text(json.dumps({"frames": counter.counts, "texts": counter.texts}))
    print(f"headend stopped; {dict(headend.core.stats)}", flush=True)
