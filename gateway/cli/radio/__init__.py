"""`hangw radio …`: a field technician's tools for a local EZSP coordinator (docs/field-technician.md).

Every command opens the coordinator, does one job and closes it again. The HAN's device inventory
and the record of what was sent live in the gateway's own database (found from --config /
--data-dir like every hangw command), under the premise's ESI ID (--esi-id, or the first of
[routes.radio] esi_ids); zigpy's database file (--database) keeps only zigpy's network state.

One module per group of subcommands (network, devices, send, watch); `session` holds what they
share. hangw imports this package at start to register the parsers: heavy imports stay inside the
commands' functions.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.radio.devices import cmd_decommission, cmd_devices, cmd_provision, cmd_remove
from gateway.cli.radio.network import cmd_backup, cmd_form, cmd_info, cmd_ports, cmd_restore
from gateway.cli.radio.send import cmd_send_event, cmd_send_price, cmd_send_text
from gateway.cli.radio.watch import cmd_watch


def _common(parser: argparse.ArgumentParser, *, coordinator: bool = True) -> None:
    parser.add_argument("-c", "--config", type=Path, help="gateway TOML config (its data_dir, storage, [routes.radio])")
    parser.add_argument("--data-dir", type=Path, help="override data_dir (where hangw.db and radio/zigpy.db live)")
    parser.add_argument(
        "--esi-id",
        default=os.environ.get("HANGW_RADIO_ESI_ID"),
        help="premise whose HAN this is (default: $HANGW_RADIO_ESI_ID, else the first [routes.radio] esi_ids)",
    )
    if not coordinator:
        return
    parser.add_argument(
        "--device",
        default=os.environ.get("HANGW_RADIO_DEVICE"),
        help="serial path or socket://host:port (default: $HANGW_RADIO_DEVICE, else [routes.radio] device)",
    )
    parser.add_argument("--baudrate", type=int, default=None, help="default 115200")
    parser.add_argument("--flow-control", choices=["software", "hardware"], default=None)
    parser.add_argument(
        "--database",
        default=os.environ.get("HANGW_RADIO_DB"),
        help="zigpy's network-state database (default: $HANGW_RADIO_DB, else DATA_DIR/radio/zigpy.db)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("radio", help="local ZigBee coordinator: form, provision, send")
    sub = parser.add_subparsers(dest="radio_command", metavar="ACTION", required=True)

    ports = sub.add_parser("ports", help="serial ports with their USB identity")
    ports.set_defaults(func=cmd_ports)

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int], *, coordinator: bool = True) -> Any:
        p = sub.add_parser(name, help=help_text)
        _common(p, coordinator=coordinator)
        p.set_defaults(func=func)
        return p

    add("info", "coordinator firmware and network", cmd_info)
    form = add("form", "form the HAN (once per coordinator)", cmd_form)
    form.add_argument("--channel", type=int, default=15)
    form.add_argument("--pan-id", type=lambda v: int(v, 0), default=None)
    backup = add("backup", "save the network (keys, PAN, devices) to a file", cmd_backup)
    backup.add_argument("--out", type=Path, required=True)
    restore = add("restore", "write a saved network onto a (replacement) coordinator", cmd_restore)
    restore.add_argument("--in", dest="in_file", type=Path, required=True)
    provision = add("provision", "admit one device by its install code and wait for it", cmd_provision)
    provision.add_argument("--eui64", required=True)
    provision.add_argument("--install-code", required=True)
    provision.add_argument("--timeout", type=int, default=120, help="join window, seconds")
    text = add("send-text", "send a text message and wait for its confirmation", cmd_send_text)
    text.add_argument("--eui64", required=True)
    text.add_argument("--text", required=True)
    text.add_argument("--message-id", type=int, default=None)
    text.add_argument("--duration", type=int, default=60, help="minutes on screen")
    text.add_argument("--no-confirm", action="store_true", help="do not ask for a confirmation")
    text.add_argument("--timeout", type=float, default=30)
    price = add("send-price", "publish a price and wait for its acknowledgement", cmd_send_price)
    price.add_argument("--eui64", required=True)
    price.add_argument("--price", required=True, help="per unit, e.g. 0.1234")
    price.add_argument("--currency", type=int, default=840, help="ISO 4217 number (840 = USD)")
    price.add_argument("--rate-label", default="TEST")
    price.add_argument("--tier", type=int, default=1)
    price.add_argument("--duration", type=int, default=60, help="minutes")
    price.add_argument("--issuer-event-id", type=int, default=None)
    price.add_argument("--timeout", type=float, default=30)
    event = add("send-event", "send a load-control event and show its status reports", cmd_send_event)
    event.add_argument("--eui64", required=True)
    event.add_argument("--issuer-event-id", type=int, default=None)
    event.add_argument("--duration", type=int, default=15, help="minutes")
    event.add_argument("--criticality", type=int, default=1)
    event.add_argument("--device-class", type=lambda v: int(v, 0), default=0x0FFF)
    event.add_argument("--timeout", type=float, default=30)
    watch = add("watch", "show decoded device traffic live", cmd_watch)
    watch.add_argument("--seconds", type=float, default=None, help="stop after this long")
    devices = add("devices", "list the HAN's device inventory (the gateway's store)", cmd_devices, coordinator=False)
    devices.add_argument("--all", action="store_true", help="include removed devices")
    remove = add("remove", "ask a device to leave and forget it", cmd_remove)
    remove.add_argument("--eui64", required=True)
    decommission = add("decommission", "every device leaves, the coordinator forgets the HAN", cmd_decommission)
    decommission.add_argument("--yes", action="store_true", help="do not ask for confirmation")
