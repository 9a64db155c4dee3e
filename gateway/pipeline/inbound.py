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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ams_adapters.contract import DeliveredToMeter, DeviceResponse
from gateway.pipeline import delivery_queue
from gateway.store import deliveries, frame_log
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


async def mark_delivered(conn: Connection, events: Sequence[DeliveredToMeter]) -> list[tuple[Any, datetime]]:
    """Apply `DeliveredToMeter` events (in the caller's transaction). Returns the cancel deliveries
    that reached their meter now, with their time, for the caller to mark the originals cancelled."""
    reports: dict[int, tuple[datetime, str | None]] = {}
    for ev in events:
        delivery_id = delivery_queue.delivery_of(ev.outbound_id)
        if delivery_id is not None and delivery_id not in reports:  # a duplicate within the batch: once
            reports[delivery_id] = (_dt(ev.at), ev.reference)
    if not reports:
        return []
    moved = await deliveries.mark_delivered(conn, reports)
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

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two answers the same answer (a replay)."""
        return (self.event.esi_id, self.event.eui64, self.at, self.event.cluster_id, self.command[:40], self.frame)


def _read_answer(ev: DeviceResponse) -> _Answer:
    """Decode a device's answer with zigbee_se and say which delivery state it reports."""
    command, fields = ev.command, dict(ev.fields)
    if ev.frame is not None:
        try:
            decoded = decode_frame(ev.cluster_id, ev.frame)
            command, fields = decoded.command, dict(decoded.fields)
        except DecodeError as exc:
            command, fields = "undecodable", {"reason": str(exc)}
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
    rows = []
    transitions = []
    for a in fresh:
        row = matched.get((a.event.esi_id, a.se_id)) if a.se_id is not None else None
        rows.append({"at": a.at, "direction": "in", "esi_id": a.event.esi_id, "eui64": a.event.eui64,
                     "request_id": row.request_id if row else None, "delivery_id": row.id if row else None,
                     "agreement_id": row.agreement_id if row else None, "cluster_id": a.event.cluster_id,
                     "command": a.command[:40], "frame": a.frame})
        if row is not None and a.state is not None:
            transitions.append(deliveries.Transition(row.id, row.request_id, row.party_id, row.esi_id,
                                                     a.event.eui64, a.state, a.at, a.detail))
    await frame_log.log_frames(conn, rows)
    await deliveries.record_transitions(conn, transitions)
