"""Setting one device's utility enrollment group (and, optionally, its randomization minutes)
through the pipeline: a `set_enrollment_group` HAN request with one delivery, addressed to that
device, carrying ZCL Write Attributes (0x02) server->client on the DRLC cluster (0x0701) — the ESI
writes the DRLC *client*'s attributes (SE 1.0, 1.1 and 1.2 alike: the attributes and the command
are ZCL's, unchanged across SE versions).

Acceptance is synchronous like every request's (stored before the API answers 202); the answer
comes back as the device's Write Attributes Response (ZCL lists only the attributes it did not
write, or one SUCCESS status) or a Default Response refusing the command (e.g. 0xc3
UNSUPPORTED_CLUSTER from a device without a DRLC client), and ends the delivery:

- `written`: every attribute written;
- `partly_written`: some refused (each named with its ZCL status in the delivery's `reason`);
- `refused`: none written;
- `no_answer`: no answer by the request's end (`pipeline.device_write_minutes`).

Only routes that declare `OperationKind.SET_ENROLLMENT_GROUP` carry it (a frame to one device);
any other is refused at acceptance, before anything is stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ams_adapters.contract import OperationKind
from ams_adapters.contract import OperationKind as RequestKind
from gateway.domain.records import Principal
from gateway.errors import Conflict, FieldError, NotFound
from gateway.pipeline import delivery_queue
from gateway.pipeline.config import PipelineConfig
from gateway.pipeline.requests import Command
from gateway.store import advisory_locks
from gateway.store import device_writes as stored
from gateway.store.store import Store
from zigbee_se import ClusterId, status_text

if TYPE_CHECKING:  # the dispatcher reads answers through inbound.py, which uses this module
    from gateway.pipeline.dispatcher import RouteSet

WRITE_COMMAND = stored.WRITE_COMMAND
WRITE_ANSWERS = ("write_attributes_response", "default_response")
WRITE_ATTRIBUTES, WRITE_ATTRIBUTES_UNDIVIDED = 0x02, 0x03

# The DRLC client attributes the API writes (SE 1.x DRLC cluster, client side), all uint8.
ATTRIBUTE_IDS: Mapping[str, int] = {
    "utility_enrollment_group": 0x0000,
    "start_randomization_minutes": 0x0001,
    "duration_randomization_minutes": 0x0002,
}
UINT8 = 0x20

# The delivery states a device's answer (or its silence) ends a write in.
WRITTEN, PARTLY_WRITTEN, REFUSED, NO_ANSWER = "written", "partly_written", "refused", "no_answer"

ROUTE_CANNOT_SET_ENROLLMENT_GROUP = "route_cannot_set_enrollment_group"
DEVICE_NOT_JOINED = "device_not_joined"
DEFAULT_SE_VERSION = "1.1"


def write_command(values: Mapping[str, int], starts_at: datetime, ends_at: datetime) -> Command:
    """Write Attributes to the DRLC client, the records of `values` (attribute name -> value) in
    attribute id order. The routes send it server -> client, towards the client's attributes
    (ams_adapters/se_frames.py), with the low byte of its SE id as the ZCL sequence number."""
    records = [{"attribute_id": ATTRIBUTE_IDS[name], "data_type": UINT8, "value": int(value)}
               for name, value in sorted(values.items(), key=lambda item: ATTRIBUTE_IDS[item[0]])]
    return Command(ClusterId.DRLC, WRITE_COMMAND, {"records": records}, starts_at, ends_at)


def route_refusal(routes: RouteSet, esi_id: str) -> Conflict | None:
    """The typed refusal when the premise's route cannot carry a device write
    (`RouteCapabilities.operations`), or None. A premise no route reaches yet is not refused: its
    write waits for a route (and expires), as every request does."""
    route = routes.for_premise(esi_id)
    if route is None:
        return None
    caps = route.capabilities
    kind = OperationKind.SET_ENROLLMENT_GROUP
    if kind in caps.operations:
        return None
    can = ", ".join(sorted(k.value for k in caps.operations)) or "none"
    transport = caps.extra.get("transport")
    how = f" over {transport}" if transport else ""
    return Conflict(f"route {caps.name!r}{how} of premise {esi_id} cannot {kind.value} (its operations: {can})",
                    code=ROUTE_CANNOT_SET_ENROLLMENT_GROUP, errors=[FieldError(
                        "esi_id", ROUTE_CANNOT_SET_ENROLLMENT_GROUP,
                        f"a premise whose route can {kind.value}; route {caps.name!r} can: {can}", esi_id)])


@dataclass(frozen=True)
class AcceptedWrite:
    request_id: int
    se_id: int
    esi_id: str
    eui64: str
    attributes: dict[str, int]
    expires_at: datetime


class DeviceWrites:
    def __init__(self, store: Store, routes: RouteSet, config: PipelineConfig) -> None:
        self.store = store
        self.routes = routes
        self.config = config

    async def set_enrollment_group(self, who: Principal, esi_id: str, eui64: str, values: Mapping[str, int],  # noqa: PLR0917
                                   agreement_id: int | None, now: datetime) -> AcceptedWrite:
        """Store a set_enrollment_group request for one joined device (the caller is authorized:
        the operator, or a third party allowed load control on the premise that provisioned it)."""
        refusal = route_refusal(self.routes, esi_id)
        if refusal is not None:
            raise refusal
        status = await stored.device_status(self.store.engine, esi_id, eui64)
        if status is None:  # the operator's unknown device; a third party's was refused by the policy
            raise NotFound(f"no device {eui64} at {esi_id}", code="unknown_device")
        if status != "joined":
            raise Conflict(f"device {eui64} at {esi_id} is {status}: only a joined device can be written to",
                           code=DEVICE_NOT_JOINED, errors=[FieldError(
                               "eui64", DEVICE_NOT_JOINED, "a device whose status is joined", status)])
        premise = await self.store.get_premise(esi_id)
        version = (premise.se_version if premise is not None else None) or DEFAULT_SE_VERSION
        ends = now + timedelta(minutes=self.config.device_write_minutes)
        command = write_command(values, now, ends)
        body = json.dumps({"kind": RequestKind.SET_ENROLLMENT_GROUP.value, "esi_id": esi_id, "eui64": eui64,
                           **dict(values)})
        async with self.store.transaction() as conn:
            # The write's id: its ZCL sequence number is se_id mod 256, what its answer carries.
            await advisory_locks.lock_premises(conn, [esi_id])  # before the id (gateway/store/se_ids.py)
            se_id = await delivery_queue.allocate_se_id(conn)
            request_id = await stored.insert_request(
                conn, party_id=who.party_id, kind=RequestKind.SET_ENROLLMENT_GROUP.value, body=body, se_id=se_id,
                command=delivery_queue.shared_command(command), starts_at=now, ends_at=ends, now=now)
            rows = delivery_queue.delivery_rows(
                request_id=request_id, party_id=who.party_id,  # None: the operator's
                se_id=se_id, command=command, shared=False, now=now,
                targets=[delivery_queue.DeliveryTarget(esi_id, version, agreement_id)])
            await stored.insert_deliveries(conn, [{**row, "target_eui64": eui64} for row in rows])
        return AcceptedWrite(request_id, se_id, esi_id, eui64, dict(values), ends)


# ------------------------------------------------------------------ the device's answer


@dataclass(frozen=True)
class WriteOutcome:
    state: str  # WRITTEN, PARTLY_WRITTEN or REFUSED
    detail: str | None  # the refused attributes with their ZCL status


def answers_a_write(command: str, fields: Mapping[str, Any]) -> bool:
    """A Write Attributes Response, or a Default Response to a Write Attributes."""
    if command == "write_attributes_response":
        return True
    return command == "default_response" and fields.get("command_id") in (WRITE_ATTRIBUTES, WRITE_ATTRIBUTES_UNDIVIDED)


def outcome(command: str, fields: Mapping[str, Any], requested: int) -> WriteOutcome:
    """What the device's answer (`answers_a_write`) says of a write of `requested` attributes."""
    if command == "default_response":
        code = int(fields.get("status", 0))
        if code == 0:
            return WriteOutcome(WRITTEN, None)
        return WriteOutcome(REFUSED, f"Write Attributes refused: {status_text(code)}")
    failures = [r for r in fields.get("records", []) if int(r.get("status", 0)) != 0]
    if not failures:
        return WriteOutcome(WRITTEN, None)
    detail = "; ".join(_failure(r) for r in failures)
    return WriteOutcome(REFUSED if len(failures) >= requested else PARTLY_WRITTEN, detail)


def _failure(record: Mapping[str, Any]) -> str:
    ident = int(record.get("attribute_id", 0))
    name = record.get("name") or next((n for n, i in ATTRIBUTE_IDS.items() if i == ident), None)
    label = f"{name} (0x{ident:04x})" if name else f"0x{ident:04x}"
    return f"{label}: {status_text(int(record['status']))}"


def requested_count(fields_json: str | None) -> int:
    """How many attributes a stored write asked for (its delivery's `fields`)."""
    if not fields_json:
        return 1
    found = json.loads(fields_json).get("records", [])
    return max(1, len(found))


def pick(rows: Sequence[Any], tsn: int | None) -> Any | None:
    """The write an answer with ZCL sequence number `tsn` answers: the newest of the device's
    waiting writes sent with it."""
    if tsn is None:
        return None
    found = [r for r in rows if r.se_id is not None and int(r.se_id) & 0xFF == tsn]
    return max(found, key=lambda r: r.id) if found else None
