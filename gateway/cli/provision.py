"""`hangw provision …`: provision HAN devices through a TDSP's head-end from a terminal, with a live
status display (requested → find pending → joined | failed, with times and the reason).

Standalone (`--tdsp …`), it talks to the head-end directly; with `--api URL --token TOKEN` it goes
through a running gateway's REST API instead (the gateway stores the device, its encrypted link
key and the history, and sends it through the premise's route).

The install code is checked here, before anything travels (a bad CRC is refused naming the
expected CRC); only the derived link key is sent. Exit status: 0 when the request ended well
(joined, deleted, done), 1 when it failed or was refused, 3 when no end came within --wait.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ams_adapters.contract import (
    ContractError,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    SubmitOutcome,
)
from ams_adapters.profiles import TDSPS
from zigbee_se.install_code import InstallCodeError, parse_install_code

ACTIONS = {"init": ProvisioningKind.INITIALIZE_HAN, "device": ProvisioningKind.PROVISION_DEVICE,
           "delete": ProvisioningKind.DELETE_DEVICE, "clear": ProvisioningKind.CLEAR_DEVICES,
           "decommission": ProvisioningKind.DECOMMISSION_HAN}
GOOD_ENDS = {ProvisioningState.JOINED, ProvisioningState.DELETED, ProvisioningState.DONE}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("provision", help="provision HAN devices through a TDSP head-end "
                                   "(and ask a meter what is on its HAN)",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="provision_action", metavar="ACTION", required=True)
    for name, kind in ACTIONS.items():
        p = sub.add_parser(name, help=kind.value.replace("_", " "))
        p.add_argument("--tdsp", choices=TDSPS,
                       help="talk to this TDSP's head-end directly (or give --api)")
        p.add_argument("--api", metavar="URL", help="go through the gateway at URL (e.g. http://127.0.0.1:8080)")
        p.add_argument("--token", help="with --api: your API token (a technician's or a third party's)")
        p.add_argument("--esi", required=True, help="ESI ID of the premise")
        if kind in (ProvisioningKind.PROVISION_DEVICE, ProvisioningKind.DELETE_DEVICE):
            p.add_argument("--eui64", required=True, help="device EUI-64, e.g. 00:0d:6f:00:0a:bc:de:f0")
        if kind is ProvisioningKind.PROVISION_DEVICE:
            p.add_argument("--install-code", required=True, help="install code (hex, separators allowed) or QR text")
            p.add_argument("--join-window-days", type=int, default=1, help="1 to 30 days (default 1)")
            p.add_argument("--device-type", default="in_home_display", help="with --api: the device's type")
        headend_arguments(p)
        p.add_argument("--request-id", default=None, help="idempotency key (default: a new one)")
        p.add_argument("--wait", type=float, default=300.0, help="seconds to follow the status (default 300)")
        p.set_defaults(func=_run, provision_kind=kind)
    from gateway.cli.inventory import register_inventory
    from gateway.cli.meter_read import register_meter_read

    register_inventory(sub)
    register_meter_read(sub)


def headend_arguments(p: argparse.ArgumentParser) -> None:
    """How to reach a TDSP's head-end directly (with --tdsp)."""
    p.add_argument("--transport", choices=["multispeak", "cim", "binary"], help="override the TDSP's transport")
    p.add_argument("--url", default="", help="MultiSpeak head-end base URL")
    p.add_argument("--callback", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="MultiSpeak: where this command serves NOT_Server callbacks")
    p.add_argument("--host", default="127.0.0.1", help="binary head-end host, or the MQTT broker (61968-9)")
    p.add_argument("--port", type=int, default=0, help="binary head-end port, or the broker's (1883)")
    p.add_argument("--prefix", default="hangw", help="61968-9: MQTT topic prefix")


def headend_adapter(args: argparse.Namespace) -> Any:
    """The TDSP's adapter (a started route is the caller's to close)."""
    from ams_adapters.factory import AdapterConfig, make_adapter

    cb_host, _, cb_port = args.callback.rpartition(":")
    return make_adapter(AdapterConfig(
        tdsp=args.tdsp, transport=args.transport, url=args.url, callback_host=cb_host or "127.0.0.1",
        callback_port=int(cb_port or 0), host=args.host, port=args.port, topic_prefix=args.prefix))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _request(args: argparse.Namespace) -> ProvisioningRequest:
    kind: ProvisioningKind = args.provision_kind
    link_key = None
    if kind is ProvisioningKind.PROVISION_DEVICE:
        code = parse_install_code(args.install_code)  # InstallCodeError names the expected CRC
        link_key = code.link_key
    return ProvisioningRequest(
        request_id=args.request_id or f"cli-{uuid.uuid4().hex[:12]}", esi_id=args.esi, kind=kind,
        eui64=getattr(args, "eui64", None), link_key=link_key,
        join_window_s=args.join_window_days * 86400 if kind is ProvisioningKind.PROVISION_DEVICE else None)


def _run(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except InstallCodeError as exc:
        print(f"install code refused: {exc.reason}; nothing was sent")  # the reason names the expected CRC
        return 1
    except ContractError as exc:
        print(f"refused: {exc}")
        return 1
    if args.api:
        if not args.token:
            print("--api needs --token")
            return 2
        from gateway.cli.provision_api import follow_api

        return asyncio.run(follow_api(args, request))
    if not args.tdsp:
        print("give --tdsp (talk to the head-end) or --api URL --token TOKEN (through the gateway)")
        return 2
    return asyncio.run(_follow(args, request))


async def _follow(args: argparse.Namespace, request: ProvisioningRequest) -> int:
    route = headend_adapter(args)
    await route.start()
    try:
        result = await route.provision(request)
        print(f"{_stamp(time.time())}  {request.kind.value} {request.eui64 or ''} at {request.esi_id}: "
              f"{result.outcome.value}" + (f" ({result.reason})" if result.reason else "")
              + (f" ref {result.reference}" if result.reference else ""), flush=True)
        if result.outcome is not SubmitOutcome.ACCEPTED:
            return 1
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            for ev in await route.drain(min(0.5, max(0.01, deadline - time.monotonic()))):
                if not isinstance(ev, ProvisioningUpdate) or ev.request_id != request.request_id:
                    continue
                print(f"{_stamp(ev.at)}  {ev.state.value}" + (f": {ev.reason}" if ev.reason else ""), flush=True)
                if ev.state in GOOD_ENDS:
                    return 0
                if ev.state is ProvisioningState.FAILED:
                    return 1
        print(f"no end within {args.wait:.0f} s; the request stays with the head-end (ref {result.reference})")
        return 3
    finally:
        await route.close()
