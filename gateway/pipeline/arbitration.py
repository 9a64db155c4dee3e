"""Arbitration between providers' load-control events at a premise (SE_BEHAVIOUR.md §1.5).

SE devices never run two events on one device class at once, so when another provider's event
overlaps a new one on a premise the gateway decides before anything is sent, by the configured
`OverlapPolicy`: refuse the new event (409), move it after the others (queue_after), or supersede
the others when it is more critical. The events sent into each home are recorded
(`lce_events`, gateway/store/han_requests.py) in the transaction that accepts the request, so two
providers' requests accepted at once see each other: `arbitrate` first takes the premises'
arbitration locks (PostgreSQL advisory locks, gateway/store/advisory_locks.py), held to the commit,
so a request or fan-out page — on any gateway instance — reads the events in force only after every
other transaction arbitrating one of its premises has committed or rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import Conflict, FieldError
from gateway.pipeline.config import OverlapPolicy
from gateway.pipeline.requests import Command, LoadControlRequest
from gateway.store import advisory_locks
from gateway.store import han_requests as requests_sql
from gateway.store.unit_of_work import Connection
from zigbee_se import utc_from_datetime


async def lock_premises(tx: Connection, esi_ids: Sequence[str]) -> None:
    """Hold `esi_ids`' arbitration locks to the end of `tx` (taken again by `arbitrate`: a no-op).
    Lock order: premises' stripes, then the SE id counter row; never the other way round."""
    await advisory_locks.lock_premises(tx, esi_ids)


async def arbitrate(tx: Connection, party_id: int, body: LoadControlRequest,  # noqa: PLR0917
                    command: Command, esi_ids: Sequence[str],
                    policy: OverlapPolicy) -> tuple[Command, list[dict[str, Any]]]:
    """Overlapping events of *other* providers for the same device classes on the same premise,
    handled by `policy`. Returns the (possibly moved) command and the conflicts that refuse it."""
    await advisory_locks.lock_premises(tx, esi_ids)  # again (queue_after) is a no-op: held already
    rows = await requests_sql.overlapping_events(
        tx, esi_ids=esi_ids, other_than_party=party_id, starts_at=command.starts_at,
        ends_at=command.ends_at, device_classes=body.device_classes)
    if not rows:
        return command, []
    if policy is OverlapPolicy.QUEUE_AFTER:
        # Move the event past every conflicting one (SE events never overlap on a device).
        start = max(r.ends_at for r in rows)
        moved = Command(command.cluster_id, command.command,
                        {**command.fields, "start_time": utc_from_datetime(start)}, start,
                        start + (command.ends_at - command.starts_at))
        return await arbitrate(tx, party_id, body, moved, esi_ids, policy)
    if policy is OverlapPolicy.SUPERSEDE_IF_HIGHER_CRITICALITY:
        lower = [r for r in rows if r.criticality < body.criticality]
        if len(lower) == len(rows):
            await requests_sql.supersede_events(tx, [r.id for r in lower])
            return command, []
        rows = [r for r in rows if r.criticality >= body.criticality]
    return command, [{"esi_id": r.esi_id, "issuer_event_id": r.issuer_event_id,
                      "starts_at": r.starts_at.isoformat(), "ends_at": r.ends_at.isoformat()}
                     for r in rows]


async def arbitrate_or_refuse(tx: Connection, party_id: int, body: LoadControlRequest,  # noqa: PLR0917
                              command: Command, esi_ids: Sequence[str], policy: OverlapPolicy) -> Command:
    """The load-control event after arbitration; Conflict when another provider's overlaps."""
    command, conflicts = await arbitrate(tx, party_id, body, command, esi_ids, policy)
    if conflicts:
        raise Conflict("overlapping load-control event(s) of another provider: " + "; ".join(
            f"{c['esi_id']}: event {c['issuer_event_id']} ({c['starts_at']}..{c['ends_at']})"
            for c in conflicts), code="event_conflict",
            errors=[FieldError(f"esi_ids[{c['esi_id']}]", "event_conflict",
                               f"overlaps issuer event {c['issuer_event_id']}",
                               c["issuer_event_id"]) for c in conflicts])
    return command


async def record_events(tx: Connection, request_id: int, party_id: int, se_id: int,  # noqa: PLR0917
                        body: LoadControlRequest, command: Command, esi_ids: Sequence[str]) -> None:
    """The event as sent to each of `esi_ids`, for the arbitration of later requests."""
    await requests_sql.record_events(
        tx, request_id=request_id, party_id=party_id, se_id=se_id, device_classes=body.device_classes,
        criticality=body.criticality, starts_at=command.starts_at, ends_at=command.ends_at, esi_ids=esi_ids)
