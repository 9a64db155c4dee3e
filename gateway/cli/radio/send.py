"""`hangw radio send-text|send-price|send-event`: one SE command to one device, its delivery and
the device's answer."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.pipeline.requests import Command

from gateway.cli.radio.session import EXIT_FAILED, EXIT_USAGE, Session, run, start_coordinator

# Heavy imports (zigpy, bellows, the store) stay inside the functions: hangw imports every CLI
# module at start (gateway/cli/__init__.py).


def _outbound_id(kind: str, se_id: int) -> str:
    """Each run of a send command is a new transmission (the store remembers every id it sent:
    reusing one would replay the old outcome instead of sending)."""
    return f"cli-{kind}-{se_id}-{time.time_ns()}"


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


# The flags that set each field of the gateway's request bodies (gateway/pipeline/requests.py).
FLAG_OF_FIELD = {
    "text": "--text",
    "duration_minutes": "--duration",
    "price": "--price",
    "currency": "--currency",
    "rate_label": "--rate-label",
    "tier": "--tier",
    "device_classes": "--device-class",
    "criticality": "--criticality",
}


def _command(session: Session, body: dict[str, Any], se_id: int) -> Command | None:
    """The SE command built as the gateway's API builds it (gateway/pipeline/requests.py): the same
    checks and limits, the same fields. None, with the errors printed, when it cannot be sent."""
    from pydantic import TypeAdapter, ValidationError

    from ams_adapters.contract import RouteCapabilities
    from ams_adapters.radio.session_core import MAX_FRAME_SIZE
    from ams_adapters.text_limit import text_limit
    from gateway.errors import FieldError
    from gateway.pipeline import requests
    from zigbee_se import DEFAULT_SE_VERSION

    try:
        request = TypeAdapter(requests.HanRequestBody).validate_python(body)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"][1:])
            print(f"error: {FLAG_OF_FIELD.get(field, field)}: {error['msg']}", file=sys.stderr)
        return None
    errors: list[FieldError] = []
    now = dt.datetime.now(dt.UTC)
    if isinstance(request, requests.TextRequest):
        # The radio's own limit: the SE frame budget without APS fragmentation (ams_adapters/text_limit.py).
        limit = text_limit(RouteCapabilities("radio", max_frame_size=MAX_FRAME_SIZE), DEFAULT_SE_VERSION)
        command = requests.build_text(request, [limit], now, session.pipeline, errors)
    elif isinstance(request, requests.PriceRequest):
        command = requests.build_price(request, now, session.pipeline, errors)
    else:
        assert isinstance(request, requests.LoadControlRequest)
        command = requests.build_load_control(request, now, session.pipeline, errors)
    for problem in errors:
        print(f"error: {FLAG_OF_FIELD.get(problem.field, problem.field)}: {problem.message}", file=sys.stderr)
    return None if errors else requests.with_se_id(command, se_id)


async def _send(
    session: Session, args: argparse.Namespace, *, kind: str, command: Command, se_id: int, answer: str | None
) -> int:
    from ams_adapters.radio import OutboundFrame
    from ams_adapters.radio.session_core import MAX_FRAME_SIZE
    from zigbee_se import DEFAULT_SE_VERSION

    frame = command.frame(str(DEFAULT_SE_VERSION), tsn=se_id, max_frame_size=MAX_FRAME_SIZE)
    route = await start_coordinator(session)
    try:
        item = OutboundFrame(_outbound_id(kind, se_id), args.eui64, command.cluster_id, frame)
        return await _deliver_and_wait(route, item, answer, args.timeout, many=kind == "event")
    finally:
        await route.stop()


def cmd_send_text(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        message_id = args.message_id if args.message_id is not None else int(time.time()) & 0xFFFFFFFF
        body = {
            "kind": "text",
            "esi_ids": [],
            "text": args.text,
            "confirmation_required": not args.no_confirm,
            "duration_minutes": args.duration,
        }
        command = _command(session, body, message_id)
        if command is None:
            return EXIT_USAGE
        answer = None if args.no_confirm else "message_confirmation"
        return await _send(session, args, kind="text", command=command, se_id=message_id, answer=answer)

    return run(args, job)


def cmd_send_price(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        issuer = args.issuer_event_id if args.issuer_event_id is not None else int(time.time())
        body = {
            "kind": "price",
            "esi_ids": [],
            "provider_id": 1,
            "rate_label": args.rate_label,
            "price": args.price,
            "currency": args.currency,
            "tier": args.tier,
            "number_of_tiers": 0,
            "duration_minutes": args.duration,
            "acknowledgement": True,
        }
        command = _command(session, body, issuer)
        if command is None:
            return EXIT_USAGE
        return await _send(session, args, kind="price", command=command, se_id=issuer, answer="price_acknowledgement")

    return run(args, job)


def cmd_send_event(args: argparse.Namespace) -> int:
    async def job(session: Session) -> int:
        issuer = args.issuer_event_id if args.issuer_event_id is not None else int(time.time())
        body = {
            "kind": "load_control",
            "esi_ids": [],
            "device_classes": args.device_class,
            "criticality": args.criticality,
            "duration_minutes": args.duration,
        }
        command = _command(session, body, issuer)
        if command is None:
            return EXIT_USAGE
        return await _send(session, args, kind="event", command=command, se_id=issuer, answer="report_event_status")

    return run(args, job)
