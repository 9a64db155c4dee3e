"""HAN requests (tables `han_requests` and `lce_events`, and a request's rows of `han_deliveries`,
`han_device_states`, `han_transitions`): the API's reads of a request and its per-premise items,
and the SQL of accepting, arbitrating, cancelling and expanding a request
(gateway/pipeline/service.py, arbitration.py, cancellation.py, fanout_expansion.py decide; these
functions read and write).

Writes take the caller's open transaction (`Store.transaction()`): a request, its delivery rows, its
load-control event records and its audit rows commit together or not at all. The delivery queue's
own statements (SE ids, delivery rows, state transitions) belong to the delivery side.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.schema import han_deliveries, han_device_states, han_requests, han_transitions, lce_events


@dataclass(frozen=True)
class RequestSummary:
    premises_by_state: dict[str, int]
    devices_by_state: dict[str, int]
    parts: list[int]  # companion requests (a price's block period), oldest first


class HistoryEntry(NamedTuple):
    """A state a delivery (eui64 None) or one of its devices went through, with its time."""

    eui64: str | None
    state: str
    at: datetime
    detail: str | None


@dataclass(frozen=True)
class DeliveryItem:
    row: Any  # a han_deliveries row
    devices: list[Any]  # its han_device_states rows
    history: list[HistoryEntry]  # oldest first (`history_of`)


def history_of(row: Any, transitions: Sequence[Any]) -> list[HistoryEntry]:
    """A delivery's history, oldest first: its `submitted` entry, read from the row
    (`submitted_at`, migration 0017), then its han_transitions rows in id order. The submitted
    entry comes first: a delivery leaves `queued` only once, and only by being handed to its
    route (submitted) or by ending (cancelled, expired, failed: then never submitted), so every
    transition row of a submitted delivery is later. (Rows handed before 0017 have a transition
    row for it instead and no `submitted_at`.)"""
    entries = [HistoryEntry(None, "submitted", row.submitted_at, None)] if row.submitted_at is not None else []
    return entries + [HistoryEntry(t.eui64, t.state, t.at, t.detail) for t in transitions]


# ---------------------------------------------------------------------- requests (writes)
async def insert_request(tx: AsyncConnection, *, party_id: int, kind: str, body_json: str, se_id: int | None,
                         now: datetime, command_json: str | None = None, starts_at: datetime | None = None,
                         ends_at: datetime | None = None, fanout: bool = False, targeted: int = 0,
                         excluded_json: str = "[]", cancels: int | None = None,
                         part_of: int | None = None) -> int:
    """A new han_requests row; returns its id. A fan-out (`fanout`) starts `expanding` at the
    first premise (cursor ""); any other request is `accepted` with its delivery rows."""
    result = await tx.execute(han_requests.insert().values(
        party_id=party_id, kind=kind, body=body_json, se_id=se_id, command=command_json,
        target_all=fanout, fanout_after="" if fanout else None, targeted=targeted,
        excluded=excluded_json, state="expanding" if fanout else "accepted",
        cancels_request_id=cancels, part_of_request_id=part_of, starts_at=starts_at,
        ends_at=ends_at, created_at=now))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def request_in(tx: AsyncConnection, request_id: int) -> Any | None:
    """The han_requests row, read in the caller's transaction, or None."""
    return (await tx.execute(han_requests.select().where(han_requests.c.id == request_id))).first()


async def set_command(tx: AsyncConnection, request_id: int, command_json: str) -> None:
    """The command shared by the request's deliveries (known after the row: a cancel's)."""
    await tx.execute(han_requests.update().where(han_requests.c.id == request_id).values(command=command_json))


async def set_targeted(tx: AsyncConnection, request_id: int, targeted: int) -> None:
    await tx.execute(han_requests.update().where(han_requests.c.id == request_id).values(targeted=targeted))


async def stop_fanout(tx: AsyncConnection, request_id: int, state: str) -> None:
    """No more pages for this fan-out: its cursor is cleared and it ends in `state`."""
    await tx.execute(han_requests.update().where(han_requests.c.id == request_id).values(
        fanout_after=None, state=state))


async def claim_fanout_page(tx: AsyncConnection, request_id: int, seen_after: str | None, **values: Any) -> bool:
    """Set `values` (the request's `state`, and `fanout_after` when the page's end is known) on
    the condition that the cursor is still `seen_after`; False if somebody moved it meanwhile (a
    cancel, another pass). Being the transaction's first write, it takes the write lock for the
    page's reads and inserts that follow.

    PostgreSQL (several instances): the request row is first locked with SKIP LOCKED, so an
    instance that finds another one expanding a page of this request goes on at once (False)
    instead of waiting for that page's transaction and then finding the cursor moved. Under READ
    COMMITTED the conditional UPDATE alone is already race-free (it waits for the row and
    re-checks the cursor on the committed version): no page twice, none skipped."""
    if tx.dialect.name == "postgresql" and (await tx.execute(sa.select(han_requests.c.id).where(
            han_requests.c.id == request_id).with_for_update(skip_locked=True))).first() is None:
        return False
    moved = await tx.execute(han_requests.update().where(
        han_requests.c.id == request_id, han_requests.c.fanout_after == seen_after).values(**values))
    return bool(moved.rowcount)


async def add_fanout_page(tx: AsyncConnection, request_id: int, *, added: int, excluded_json: str,
                          **values: Any) -> None:
    """Count a page's `added` deliveries into the request, store its exclusions list
    (`excluded_json`), and set `values` (`fanout_after`, `state`) when the cursor moves only now."""
    await tx.execute(han_requests.update().where(han_requests.c.id == request_id).values(
        targeted=han_requests.c.targeted + added, excluded=excluded_json, **values))


# ---------------------------------------------------------------------- a request's deliveries
async def request_deliveries(tx: AsyncConnection, request_id: int, esi_id: str | None = None) -> list[Any]:
    """(id, request_id, party_id, esi_id, state, se_version) of the request's deliveries (at one
    premise), as a cancellation needs them: pending ones are cancelled, sent ones get an SE cancel."""
    d = han_deliveries.c
    query = sa.select(d.id, d.request_id, d.party_id, d.esi_id, d.state, d.se_version).where(
        d.request_id == request_id)
    if esi_id is not None:
        query = query.where(d.esi_id == esi_id)
    return list((await tx.execute(query)).all())


async def delivery_versions(tx: AsyncConnection, request_id: int, esi_ids: Collection[str]) -> dict[str, str]:
    """ESI ID -> the SE version the request's delivery to that premise was encoded for."""
    d = han_deliveries.c
    return dict((await tx.execute(sa.select(d.esi_id, d.se_version).where(
        d.request_id == request_id, d.esi_id.in_(esi_ids)))).all())


# ---------------------------------------------------------------------- load-control event records
# The arbitration's view of the load-control events sent into each home (`lce_events`): one row per
# (premise, event), `active` until it ends, is cancelled or is superseded by another provider's.

async def overlapping_events(tx: AsyncConnection, *, esi_ids: Collection[str], other_than_party: int,
                             starts_at: datetime, ends_at: datetime, device_classes: int) -> list[Any]:
    """Active lce_events rows of other parties at these premises that overlap [starts_at, ends_at)
    on one of `device_classes` (a bit mask)."""
    e = lce_events.c
    return list((await tx.execute(sa.select(lce_events).where(
        e.esi_id.in_(esi_ids), e.state == "active", e.party_id != other_than_party,
        e.ends_at > starts_at, e.starts_at < ends_at, e.device_class.op("&")(device_classes) != 0))).all())


async def supersede_events(tx: AsyncConnection, event_ids: Collection[int]) -> None:
    await tx.execute(lce_events.update().where(lce_events.c.id.in_(event_ids)).values(state="superseded"))


async def record_events(tx: AsyncConnection, *, request_id: int, party_id: int, se_id: int,
                        device_classes: int, criticality: int, starts_at: datetime, ends_at: datetime,
                        esi_ids: Sequence[str]) -> None:
    """The event (issuer event id `se_id`) as sent to each of `esi_ids`, active."""
    if esi_ids:
        await tx.execute(lce_events.insert(), [{
            "esi_id": e, "issuer_event_id": se_id, "party_id": party_id, "request_id": request_id,
            "device_class": device_classes, "criticality": criticality,
            "starts_at": starts_at, "ends_at": ends_at, "state": "active"} for e in esi_ids])


async def end_request_events(tx: AsyncConnection, request_id: int, effective: datetime | None) -> None:
    """The events of one request end (see `_end_events`)."""
    await _end_events(tx, lce_events.c.request_id == request_id, effective)


async def end_party_events(tx: AsyncConnection, esi_id: str, party_id: int, effective: datetime | None) -> None:
    """Every event of one party at one premise ends (see `_end_events`)."""
    await _end_events(tx, sa.and_(lce_events.c.esi_id == esi_id, lce_events.c.party_id == party_id), effective)


async def _end_events(tx: AsyncConnection, which: Any, effective: datetime | None) -> None:
    """Cancelled events (`which`: a condition on lce_events): cancelled now, or, with a future
    effective time, running until then (the devices keep the event until that time, so other
    providers may not overlap it before)."""
    active = sa.and_(which, lce_events.c.state == "active")
    if effective is None:
        await tx.execute(lce_events.update().where(active).values(state="cancelled"))
        return
    await tx.execute(lce_events.update().where(active, lce_events.c.starts_at >= effective).values(
        state="cancelled"))  # not started by then: it never runs
    await tx.execute(lce_events.update().where(active, lce_events.c.ends_at > effective).values(
        ends_at=effective))


async def cancel_events_at(tx: AsyncConnection, request_id: int, esi_ids: Collection[str]) -> None:
    """The request's events at these premises are cancelled (whatever their state)."""
    await tx.execute(lce_events.update().where(
        lce_events.c.request_id == request_id, lce_events.c.esi_id.in_(esi_ids)).values(state="cancelled"))


async def active_event_requests(tx: AsyncConnection, esi_id: str, party_id: int, now: datetime) -> list[int]:
    """Ids of the party's requests with an event still active at the premise after `now`, in order."""
    e = lce_events.c
    return list((await tx.execute(sa.select(e.request_id).where(
        e.esi_id == esi_id, e.party_id == party_id, e.state == "active", e.ends_at > now).distinct().order_by(
        e.request_id))).scalars().all())


# ---------------------------------------------------------------------- the API's reads

async def get_request(engine: AsyncEngine, request_id: int) -> Any | None:
    """The han_requests row, or None."""
    async with engine.connect() as conn:
        return (await conn.execute(han_requests.select().where(han_requests.c.id == request_id))).first()


async def list_requests(engine: AsyncEngine, party_id: int | None, *, after: int, limit: int,
                        kinds: Collection[str] = (), states: Collection[str] = (),
                        created_after: datetime | None = None, created_before: datetime | None = None) -> list[Any]:
    """A page of requests (han_requests rows) by id after `after`: the party's own (None: every
    request, the operator's view), filtered by kind, stored state and creation time
    (`created_after` <= created_at < `created_before`). Keyset on (party_id, id): the index
    ix_han_requests_party_id_id walks one party's requests in id order."""
    r = han_requests.c
    query = han_requests.select().where(r.id > after)
    if party_id is not None:
        query = query.where(r.party_id == party_id)
    if kinds:
        query = query.where(r.kind.in_(sorted(kinds)))
    if states:
        query = query.where(r.state.in_(sorted(states)))
    if created_after is not None:
        query = query.where(r.created_at >= created_after)
    if created_before is not None:
        query = query.where(r.created_at < created_before)
    async with engine.connect() as conn:
        return list((await conn.execute(query.order_by(r.id).limit(limit))).all())


async def summarize(engine: AsyncEngine, request_id: int) -> RequestSummary:
    async with engine.connect() as conn:
        by_state: dict[str, int] = dict((await conn.execute(sa.select(han_deliveries.c.state, sa.func.count()).where(
            han_deliveries.c.request_id == request_id).group_by(han_deliveries.c.state))).all())
        parts = (await conn.execute(sa.select(han_requests.c.id).where(
            han_requests.c.part_of_request_id == request_id).order_by(han_requests.c.id))).scalars().all()
        devices: dict[str, int] = dict((await conn.execute(sa.select(han_device_states.c.state, sa.func.count()).join(
            han_deliveries, han_deliveries.c.id == han_device_states.c.delivery_id).where(
            han_deliveries.c.request_id == request_id).group_by(han_device_states.c.state))).all())
    return RequestSummary(by_state, devices, list(parts))


async def list_deliveries(engine: AsyncEngine, request_id: int, *, after: int, limit: int,
                          state: str | None = None, esi_id: str | None = None) -> Sequence[DeliveryItem]:
    """The request's deliveries by id after `after`, each with its device states and history."""
    query = han_deliveries.select().where(han_deliveries.c.request_id == request_id,
                                          han_deliveries.c.id > after)
    if state is not None:
        query = query.where(han_deliveries.c.state == state)
    if esi_id is not None:
        query = query.where(han_deliveries.c.esi_id == esi_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(han_deliveries.c.id).limit(limit))).all()
        ids = [r.id for r in rows]
        devs = (await conn.execute(han_device_states.select().where(
            han_device_states.c.delivery_id.in_(ids)))).all() if ids else []
        hist = (await conn.execute(han_transitions.select().where(
            han_transitions.c.delivery_id.in_(ids)).order_by(han_transitions.c.id))).all() if ids else []
    return [DeliveryItem(r, [d for d in devs if d.delivery_id == r.id],
                         history_of(r, [h for h in hist if h.delivery_id == r.id])) for r in rows]


# -- the dispatcher's reads and the group commit's insert (gateway/pipeline/dispatcher.py, group_commit.py)

async def expanding_fanouts(engine: AsyncEngine, limit: int) -> list[Any]:
    """Requests whose fan-out still has premises to expand (han_requests rows), oldest first."""
    async with engine.connect() as conn:
        return list((await conn.execute(han_requests.select().where(
            han_requests.c.fanout_after.is_not(None)).order_by(han_requests.c.id).limit(limit))).all())


async def shared_commands(engine: AsyncEngine, request_ids: set[int]) -> dict[int, str]:
    """Request id -> its shared command (JSON: fields and the frame per SE version) for the
    requests that have one."""
    if not request_ids:
        return {}
    async with engine.connect() as conn:
        return {rid: cmd for rid, cmd in (await conn.execute(sa.select(han_requests.c.id, han_requests.c.command).where(
            han_requests.c.id.in_(request_ids)))).all() if cmd is not None}


async def insert_requests(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Insert request rows in one statement (in the caller's transaction); returns SE id ->
    request id (the SE id is unique per request: it maps the RETURNING rows, which come in no
    promised order, back to their requests)."""
    returned = (await conn.execute(han_requests.insert().returning(han_requests.c.id, han_requests.c.se_id),
                                   list(rows))).all()
    return {int(se_id): int(request_id) for request_id, se_id in returned}


# -- the dashboard's reads (gateway/pages/dashboard.py)

async def party_request_counts(engine: AsyncEngine, party_id: int) -> dict[tuple[str, str], int]:
    """How many of the party's requests are in each (kind, state)."""
    query = (sa.select(han_requests.c.kind, han_requests.c.state, sa.func.count())
             .where(han_requests.c.party_id == party_id).group_by(han_requests.c.kind, han_requests.c.state))
    async with engine.connect() as conn:
        return {(kind, state): count for kind, state, count in (await conn.execute(query)).all()}


async def recent_requests(engine: AsyncEngine, party_id: int, limit: int) -> list[Any]:
    """The party's newest requests (han_requests rows), newest first."""
    query = (han_requests.select().where(han_requests.c.party_id == party_id)
             .order_by(han_requests.c.id.desc()).limit(limit))
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def party_activity(engine: AsyncEngine, party_id: int, edges: Sequence[datetime]) -> list[tuple[int, int]]:
    """Per interval [edges[i], edges[i+1]): how many of the party's deliveries reached their meter
    (`delivered`), and how many answers its devices gave (any device-level transition). One scan,
    the interval found by a CASE (the same SQL on SQLite and PostgreSQL; no date functions)."""
    if len(edges) < 2:
        return []
    at = han_transitions.c.at
    bucket = sa.case(*[(at < edge, i) for i, edge in enumerate(edges[1:])], else_=-1).label("bucket")
    device = han_transitions.c.eui64.is_not(None).label("device")
    query = (sa.select(bucket, device, sa.func.count())
             .select_from(han_transitions.join(han_deliveries, han_deliveries.c.id == han_transitions.c.delivery_id))
             .where(han_deliveries.c.party_id == party_id, at >= edges[0], at < edges[-1],
                    sa.or_(han_transitions.c.eui64.is_not(None), han_transitions.c.state == "delivered"))
             .group_by(bucket, device))
    counts = [[0, 0] for _ in edges[1:]]
    async with engine.connect() as conn:
        for index, is_device, count in (await conn.execute(query)).all():
            if 0 <= index < len(counts):
                counts[index][1 if is_device else 0] += count
    return [(d, a) for d, a in counts]
