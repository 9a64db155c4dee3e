"""`hangw radio …`: a field technician's tools for a local EZSP coordinator (docs/field-technician.md).

Every command opens the coordinator, does one job and closes it again. The HAN's device inventory
and the record of what was sent live in the gateway's own database (found from --config /
--data-dir like every hangw command), under the premise's ESI ID (--esi-id, or the first of
[routes.radio] esi_ids); zigpy's database file (--database) keeps only zigpy's network state.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ams_adapters.radio import CoordinatorSession, RadioConfig
    from ams_adapters.radio.state import RouteStateStore
    from gateway.config import GatewayConfig

EXIT_FAILED, EXIT_USAGE, EXIT_NO_COORDINATOR = 1, 2, 3


class UsageError(ValueError):
    """A command-line value that cannot work: printed as is, exit code 2."""


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
    ports.set_defaults(func=_ports)

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int], *, coordinator: bool = True) -> Any:
        p = sub.add_parser(name, help=help_text)
        _common(p, coordinator=coordinator)
        p.set_defaults(func=func)
        return p

    add("info", "coordinator firmware and network", _info)
    form = add("form", "form the HAN (once per coordinator)", _form)
    form.add_argument("--channel", type=int, default=15)
    form.add_argument("--pan-id", type=lambda v: int(v, 0), default=None)
    backup = add("backup", "save the network (keys, PAN, devices) to a file", _backup)
    backup.add_argument("--out", type=Path, required=True)
    restore = add("restore", "write a saved network onto a (replacement) coordinator", _restore)
    restore.add_argument("--in", dest="in_file", type=Path, required=True)
    provision = add("provision", "admit one device by its install code and wait for it", _provision)
    provision.add_argument("--eui64", required=True)
    provision.add_argument("--install-code", required=True)
    provision.add_argument("--timeout", type=int, default=120, help="join window, seconds")
    text = add("send-text", "send a text message and wait for its confirmation", _send_text)
    text.add_argument("--eui64", required=True)
    text.add_argument("--text", required=True)
    text.add_argument("--message-id", type=int, default=None)
    text.add_argument("--duration", type=int, default=60, help="minutes on screen")
    text.add_argument("--no-confirm", action="store_true", help="do not ask for a confirmation")
    text.add_argument("--timeout", type=float, default=30)
    price = add("send-price", "publish a price and wait for its acknowledgement", _send_price)
    price.add_argument("--eui64", required=True)
    price.add_argument("--price", required=True, help="per unit, e.g. 0.1234")
    price.add_argument("--currency", type=int, default=840, help="ISO 4217 number (840 = USD)")
    price.add_argument("--rate-label", default="TEST")
    price.add_argument("--tier", type=int, default=1)
    price.add_argument("--duration", type=int, default=60, help="minutes")
    price.add_argument("--issuer-event-id", type=int, default=None)
    price.add_argument("--timeout", type=float, default=30)
    event = add("send-event", "send a load-control event and show its status reports", _send_event)
    event.add_argument("--eui64", required=True)
    event.add_argument("--issuer-event-id", type=int, default=None)
    event.add_argument("--duration", type=int, default=15, help="minutes")
    event.add_argument("--criticality", type=int, default=1)
    event.add_argument("--device-class", type=lambda v: int(v, 0), default=0x0FFF)
    event.add_argument("--timeout", type=float, default=30)
    watch = add("watch", "show decoded device traffic live", _watch)
    watch.add_argument("--seconds", type=float, default=None, help="stop after this long")
    devices = add("devices", "list the HAN's device inventory (the gateway's store)", _devices, coordinator=False)
    devices.add_argument("--all", action="store_true", help="include removed devices")
    remove = add("remove", "ask a device to leave and forget it", _remove)
    remove.add_argument("--eui64", required=True)
    decommission = add("decommission", "every device leaves, the coordinator forgets the HAN", _decommission)
    decommission.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# --------------------------------------------------------------------------- helpers
@dataclass
class Session:
    """What one command works with: the coordinator's config and the gateway's route state."""

    radio: RadioConfig | None
    state: RouteStateStore | None
    esi_id: str | None


def _gateway_config(args: argparse.Namespace) -> GatewayConfig:
    from gateway.config import load_config

    config = load_config(args.config)  # HANGW_RADIO_… are not config keys (gateway.config)
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    return config


def _radio_config(args: argparse.Namespace, gateway: GatewayConfig, **extra: Any) -> RadioConfig:
    from ams_adapters.radio import RadioConfig

    configured = gateway.routes.radio
    device = args.device or (configured.device if configured else None)
    if not device:
        raise UsageError("--device: a serial path or socket://host:port is required (or [routes.radio] device)")
    database = args.database or str(radio_database(gateway))
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    baudrate = args.baudrate or (configured.baudrate if configured else 115200)
    flow = args.flow_control or (configured.flow if configured else None)
    return RadioConfig(device=device, baudrate=baudrate, flow_control=flow, database_path=database, **extra)


def radio_database(gateway: GatewayConfig) -> Path:
    """zigpy's database: [routes.radio] zigpy_database, else DATA_DIR/radio/zigpy.db."""
    configured = gateway.routes.radio
    if configured is not None and configured.zigpy_database is not None:
        return configured.zigpy_database
    return gateway.data_dir / "radio" / "zigpy.db"


def _esi_id(args: argparse.Namespace, gateway: GatewayConfig) -> str | None:
    if args.esi_id:
        return str(args.esi_id)
    configured = gateway.routes.radio
    return configured.esi_ids[0] if configured else None


def _run(
    args: argparse.Namespace,
    job: Callable[[Session], Awaitable[int]],
    *,
    coordinator: bool = True,
    inventory: bool = False,
    **extra: Any,
) -> int:
    """Build the configs, open the gateway's store when the premise is known, run the job; map
    the errors a technician can cause to exit codes. `inventory`: the job changes or reads the
    device inventory, so the premise (--esi-id) is required."""
    from ams_adapters.radio import RadioConfigError, RadioError
    from gateway.config import ConfigError
    from gateway.store.route_state import PremiseNotFound
    from zigbee_se import EncodeError, InstallCodeError

    try:
        gateway = _gateway_config(args)
        radio = _radio_config(args, gateway, **extra) if coordinator else None
        esi_id = _esi_id(args, gateway)
        if inventory and esi_id is None:
            raise UsageError("--esi-id: which premise's HAN this is (or [routes.radio] esi_ids in --config)")
    except (ConfigError, RadioConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def main() -> int:
        if esi_id is None:
            return await job(Session(radio, None, None))
        from gateway.store.route_state import GatewayRouteState
        from gateway.store.store import open_store

        gateway.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(gateway.storage_url)
        try:
            state = GatewayRouteState(store, esi_id)
            await state.check_premise()
            return await job(Session(radio, state, esi_id))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (InstallCodeError, EncodeError, RadioConfigError, UsageError, PremiseNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, TimeoutError, RadioError) as exc:
        print(f"error: coordinator at {args.device}: {exc!r}", file=sys.stderr)
        return EXIT_NO_COORDINATOR
    except Exception as exc:
        if type(exc).__name__ == "NetworkNotFormed":
            print("error: no network on this coordinator: run `hangw radio form` first", file=sys.stderr)
            return EXIT_FAILED
        raise


async def _started(session: Session) -> CoordinatorSession:
    from ams_adapters.radio import CoordinatorSession

    assert session.radio is not None
    route = CoordinatorSession(session.radio, state=session.state)
    await route.start(form=False)
    return route


def _outbound_id(kind: str, se_id: int) -> str:
    """Each run of a send command is a new transmission (the store remembers every id it sent:
    reusing one would replay the old outcome instead of sending)."""
    return f"cli-{kind}-{se_id}-{time.time_ns()}"


def _stamp() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def _utc(seconds: int) -> str:
    from zigbee_se import datetime_from_utc

    when = datetime_from_utc(seconds)
    return "an invalid time" if when is None else when.strftime("%Y-%m-%d %H:%M:%SZ")


async def _deliver_and_wait(route: Any, item: Any, answer: str | None, timeout: float, many: bool = False) -> int:
    """Submit one frame, print its delivery result, then the device's answer(s) if asked for.

    A device's answer can reach us before bellows returns from the send (the NCP reports the
    APS ACK and then the answer, back to back), so answers are held until the delivery line.
    """
    from ams_adapters.contract import SubmitOutcome
    from ams_adapters.radio import Delivery, DeliveryResult, DeviceFrame

    [submitted] = await route.submit([item])
    if submitted.outcome is not SubmitOutcome.ACCEPTED:
        print(f"rejected: {submitted.reason}")
        return EXIT_FAILED
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delivered = False
    answers: list[Any] = []
    while True:
        if delivered and (answer is None or (answers and not many)):
            return 0
        try:
            event = await route.next_event(max(deadline - loop.time(), 0))
        except TimeoutError:
            break
        if isinstance(event, DeliveryResult) and event.outbound_id == item.outbound_id:
            if event.outcome is not Delivery.DELIVERED:
                print(f"{event.outcome.value}: {event.reason}")
                return EXIT_FAILED
            print(f"delivered to {item.eui64} (APS acknowledged)", flush=True)
            delivered = True
            for held in answers:
                _print_answer(held)
        elif isinstance(event, DeviceFrame) and event.eui64 == item.eui64 and event.command == answer:
            answers.append(event)
            if delivered:
                _print_answer(event)
    if not delivered:
        print(f"no delivery result within {timeout:g}s")
        return EXIT_FAILED
    if answers:
        return 0
    print(f"no {(answer or '').replace('_', ' ')} within {timeout:g}s")
    return EXIT_FAILED


def _print_answer(event: Any) -> None:
    f = event.fields or {}
    if event.command == "message_confirmation":
        print(f"confirmed message {f['message_id']} at {_utc(f['confirmation_time'])}")
    elif event.command == "price_acknowledgement":
        print(f"price {f['issuer_event_id']} acknowledged at {_utc(f['price_ack_time'])}")
    elif event.command == "report_event_status":
        from zigbee_se import EventStatus  # lazily, as every import of this module (hangw's start)
        from zigbee_se.commands.drlc import EVENT_STATUSES

        code = f["event_status"]
        status = EventStatus(code).text if code in EVENT_STATUSES else f"0x{code:02X}"
        print(f"event {f['issuer_event_id']}: {status} at {_utc(f['event_status_time'])}")
    else:
        print(f"{event.command}: {json.dumps(f, default=str)}")


# --------------------------------------------------------------------------- commands
def _ports(args: argparse.Namespace) -> int:
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


def _info(args: argparse.Namespace) -> int:
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

    return _run(args, job)


def _form(args: argparse.Namespace) -> int:
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

    return _run(args, job, channel=args.channel, pan_id=args.pan_id)


def _backup(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        route = await _started(session)
        try:
            backup = await route.backup()
        finally:
            await route.stop()
        args.out.write_text(json.dumps(backup, indent=2))
        os.chmod(args.out, 0o600)  # it holds the network key
        print(f"backup written to {args.out} (contains the network key: keep it private)")
        return 0

    return _run(args, job)


def _restore(args: argparse.Namespace) -> int:
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

    return _run(args, job)


def _provision(args: argparse.Namespace) -> int:
    from zigbee_se import InstallCodeError, parse_install_code

    try:  # validate on entry, before touching the radio
        code = parse_install_code(args.install_code)
    except InstallCodeError as exc:
        print(f"error: --install-code: {exc.reason}", file=sys.stderr)
        return EXIT_USAGE
    print(f"install code {code.normalized}: CRC ok")

    async def job(session: Session) -> int:
        from ams_adapters.radio import DeviceJoined

        route = await _started(session)
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

    return _run(args, job, inventory=True)


def _send_text(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import OutboundFrame
        from zigbee_se import encode_frame

        message_id = args.message_id if args.message_id is not None else int(time.time()) & 0xFFFFFFFF
        frame = encode_frame(
            "messaging",
            "display_message",
            {
                "message_id": message_id,
                "message_control": 0x00 if args.no_confirm else 0x80,
                "start_time": 0,
                "duration_in_minutes": args.duration,
                "message": args.text,
            },
            tsn=message_id % 256,
        )
        route = await _started(session)
        try:
            item = OutboundFrame(_outbound_id("text", message_id), args.eui64, 0x0703, frame)
            answer = None if args.no_confirm else "message_confirmation"
            return await _deliver_and_wait(route, item, answer, args.timeout)
        finally:
            await route.stop()

    return _run(args, job)


def _send_price(args: argparse.Namespace) -> int:
    from zigbee_se import EncodeError, decimal_to_price

    try:
        value, digits = decimal_to_price(args.price, field="--price")
    except EncodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def job(session: Session) -> int:
        from ams_adapters.radio import OutboundFrame
        from zigbee_se import encode_frame

        issuer = args.issuer_event_id if args.issuer_event_id is not None else int(time.time())
        frame = encode_frame(
            "price",
            "publish_price",
            {
                "provider_id": 1,
                "rate_label": args.rate_label,
                "issuer_event_id": issuer,
                "current_time": 0,
                "unit_of_measure": 0,
                "currency": args.currency,
                "price_trailing_digit": digits,
                "price_tier": args.tier,
                "number_of_price_tiers": 0,
                "register_tier": args.tier,
                "start_time": 0,
                "duration_in_minutes": args.duration,
                "price": value,
                "price_control": 0x01,  # ack required
            },
            tsn=issuer % 256,
        )
        route = await _started(session)
        try:
            item = OutboundFrame(_outbound_id("price", issuer), args.eui64, 0x0700, frame)
            return await _deliver_and_wait(route, item, "price_acknowledgement", args.timeout)
        finally:
            await route.stop()

    return _run(args, job)


def _send_event(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import OutboundFrame
        from zigbee_se import encode_frame

        issuer = args.issuer_event_id if args.issuer_event_id is not None else int(time.time())
        frame = encode_frame(
            "drlc",
            "load_control_event",
            {
                "issuer_event_id": issuer,
                "device_class": args.device_class,
                "utility_enrollment_group": 0,
                "start_time": 0,
                "duration_in_minutes": args.duration,
                "criticality_level": args.criticality,
                "event_control": 0,
            },
            tsn=issuer % 256,
        )
        route = await _started(session)
        try:
            item = OutboundFrame(_outbound_id("event", issuer), args.eui64, 0x0701, frame)
            return await _deliver_and_wait(route, item, "report_event_status", args.timeout, many=True)
        finally:
            await route.stop()

    return _run(args, job)


def _watch(args: argparse.Namespace) -> int:
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

        route = await _started(session)
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

    return _run(args, job)


def _devices(args: argparse.Namespace) -> int:
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

    return _run(args, job, coordinator=False, inventory=True)


def _remove(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        from ams_adapters.radio import DeviceLeft

        route = await _started(session)
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

    return _run(args, job, inventory=True)


def _decommission(args: argparse.Namespace) -> int:
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
        route = await _started(session)
        try:
            removed = await route.decommission()
        finally:
            await route.stop()
        for eui64 in removed:
            print(f"{eui64} asked to leave; removed from the inventory")
        print(f"decommissioned: {len(removed)} device(s) removed, coordinator has no network")
        print("form a new HAN with `hangw radio form` (or restore a backup) to start again")
        return 0

    return _run(args, job, inventory=True)
