"""Route events into the store, in bulk and idempotently.

Routes deliver their events at least once: `RemoteSimulatedRoute` reads the field's event log from
the start after a gateway restart, and a head-end may resend a notification it is not sure we got.
Applying an event twice must change nothing:

- `DeliveredToMeter` (and failures) move a delivery only from `queued`/`submitted`, so a replay
  finds it delivered already and records no transition and no webhook event;
- a `DeviceResponse` is the same answer again when the frame log already holds an inbound frame
  of that device with the same time, cluster, command and bytes: it is skipped whole (no second
  frame-log row, history row or webhook event).

Events that arrive together are written in bulk — consecutive `DeliveredToMeter` events with
three statements in all (read the deliveries, update them, record their transitions), consecutive
device answers with a handful — instead of a handful per event: at 100 deliveries per second
that was most of the gateway's database round trips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ams_adapters.contract import DeliveredToMeter, DeviceResponse
from gateway.pipeline import delivery_queue, device_writes
from gateway.store import deliveries, frame_log
from gateway.store import device_writes as stored_writes
from gateway.store.unit_of_work import Connection
from zigbee_se import DecodeError, EventStatus, decode_frame
from zigbee_se.commands.drlc import EVENT_STATUSES

CANCEL_COMMANDS = ("cancel_message", "cancel_load_control_event")
# The commands device answers refer to (a cancel's answer is about the original event).
ORIGINAL_COMMANDS = ("display_message", "publish_price", "publish_block_period", "load_control_event")


def _event_status_state(status: Any) -> str:
    """A Report Event Status code as a delivery state: ``rejected_expired``; an unknown code as
    ``event_status_<n>``."""
    if isinstance(status, int) and status in EVENT_STATUSES:
        return EventStatus(status).name.lower()
    return f"event_status_{status}"


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


async def mark_delivered(conn: Connection, events: Sequence[DeliveredToMeter],
                         ack_window: timedelta) -> list[tuple[Any, datetime]]:
    """Apply `DeliveredToMeter` events (in the caller's transaction); a price or block period that
    asks for acknowledgement awaits its devices' for `ack_window` from then. Returns the cancel
    deliveries that reached their meter now, with their time, for the caller to mark the
    originals cancelled."""
    reports: dict[int, tuple[datetime, str | None]] = {}
    for ev in events:
        delivery_id = delivery_queue.delivery_of(ev.outbound_id)
        if delivery_id is not None and delivery_id not in reports:  # a duplicate within the batch: once
            reports[delivery_id] = (_dt(ev.at), ev.reference)
    if not reports:
        return []
    moved = await deliveries.mark_delivered(conn, reports, ack_window)
    return [(r, reports[r.id][0]) for r in moved if r.command in CANCEL_COMMANDS]


@dataclass(frozen=True)
class _Answer:
    event: DeviceResponse
    at: datetime
    command: str
    frame: str | None
    se_id: int | None
    state: str | None
    detail: str | None
    tsn: int | None = None  # a device write's answer: the ZCL sequence number it answers
    fields: Mapping[str, Any] | None = None  # ...and its records, read once matched to its write

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two answers the same answer (a replay)."""
        return (self.event.esi_id, self.event.eui64, self.at, self.event.cluster_id, self.command[:40], self.frame)


def _read_answer(ev: DeviceResponse) -> _Answer:
    """Decode a device's answer with zigbee_se and say which delivery state it reports."""
    command, fields = ev.command, dict(ev.fields)
    tsn: int | None = None
    if ev.frame is not None:
        try:
            decoded = decode_frame(ev.cluster_id, ev.frame)
            command, fields, tsn = decoded.command, dict(decoded.fields), decoded.tsn
        except DecodeError as exc:
            command, fields = "undecodable", {"reason": str(exc)}
    if device_writes.answers_a_write(command, fields):
        # Its state depends on how many attributes the write asked for: read once it is matched.
        return _Answer(ev, _dt(ev.at), command, ev.frame.hex() if ev.frame is not None else None, None, None,
                       None, tsn, fields)
    se_id: int | None = None
    state: str | None = None
    detail: str | None = None
    if command == "message_confirmation":
        se_id, state = fields.get("message_id"), "confirmed"
        detail = fields.get("message_response") or None
    elif command == "price_acknowledgement":
        se_id, state = fields.get("issuer_event_id"), "acknowledged"
    elif command == "report_event_status":
        se_id = fields.get("issuer_event_id")
        status = fields.get("event_status")
        state = _event_status_state(status)
    return _Answer(ev, _dt(ev.at), command, ev.frame.hex() if ev.frame is not None else None, se_id, state,
                   detail)


async def device_answers(conn: Connection, events: Sequence[DeviceResponse]) -> None:
    """Store device answers (in the caller's transaction): each goes to the frame log, matched or
    not, and those that report a state (confirmation, acknowledgement, event status) become a
    device transition of the delivery they answer (by premise and message id / issuer event id).
    Answers already in the frame log are replays and are skipped. Three reads and two writes for
    the whole batch."""
    answers: dict[tuple[Any, ...], _Answer] = {}
    for ev in events:
        answer = _read_answer(ev)
        answers.setdefault(answer.key, answer)  # the same answer twice in one batch: once
    if not answers:
        return
    esi_ids = sorted({a.event.esi_id for a in answers.values()})
    times = sorted({a.at for a in answers.values()})
    logged = await frame_log.logged_inbound(conn, esi_ids, times)
    fresh = [a for key, a in answers.items() if key not in logged]
    if not fresh:
        return  # every one a replay (routes deliver at least once)
    wanted = sorted({(a.event.esi_id, a.se_id) for a in fresh if a.se_id is not None})
    matched = await deliveries.answered(conn, wanted, ORIGINAL_COMMANDS)
    writes = await _waiting_writes(conn, [a for a in fresh if a.fields is not None])
    rows = []
    transitions = []
    ended: list[tuple[Any, device_writes.WriteOutcome, datetime]] = []
    for a in fresh:
        row = matched.get((a.event.esi_id, a.se_id)) if a.se_id is not None else None
        state, detail = a.state, a.detail
        if a.fields is not None:  # a device write's answer: the write it answers, and how it ended
            waiting = writes.get((a.event.esi_id, _eui64(a.event.eui64)), [])
            row = device_writes.pick(waiting, a.tsn)
            if row is not None:
                waiting.remove(row)  # answered: a second answer in this batch is not its answer
                result = device_writes.outcome(a.command, a.fields, device_writes.requested_count(row.fields))
                state, detail = result.state, result.detail
                ended.append((row, result, a.at))
        rows.append({"at": a.at, "direction": "in", "esi_id": a.event.esi_id, "eui64": a.event.eui64,
                     "request_id": row.request_id if row else None, "delivery_id": row.id if row else None,
                     "agreement_id": row.agreement_id if row else None, "cluster_id": a.event.cluster_id,
                     "command": a.command[:40], "frame": a.frame})
        if row is not None and state is not None:
            transitions.append(deliveries.Transition(row.id, row.request_id, row.party_id, row.esi_id,
                                                     a.event.eui64, state, a.at, detail))
    await frame_log.log_frames(conn, rows)
    await deliveries.record_transitions(conn, transitions)
    for row, result, at in ended:  # the device's answer is the write's end
        await deliveries.set_state(conn, [row], result.state, at, reason=result.detail,
                                   only_from=stored_writes.ANSWERABLE)


def _eui64(text: str) -> str:
    """A route's EUI-64 ('00:1b:c5:…', zigpy's form) as the API and han_devices write it."""
    return text.replace(":", "").upper()


async def _waiting_writes(conn: Connection, answers: Sequence[_Answer]) -> dict[tuple[str, str], list[Any]]:
    """The writes waiting for an answer from the devices that answered, by (ESI ID, EUI-64)."""
    found: dict[tuple[str, str], list[Any]] = {}
    devices = [(a.event.esi_id, _eui64(a.event.eui64)) for a in answers]
    for row in await stored_writes.awaiting_answer(conn, devices):
        found.setdefault((row.esi_id, row.target_eui64), []).append(row)
    return found
