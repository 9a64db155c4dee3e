"""The HAN delivery queue (tables `han_deliveries`, `han_transitions`, `han_device_states`): one row
per premise and SE event, its state transitions with their times, and each device's state; the
reads and writes of the dispatcher (due rows, expiry, retries, the set-based record of a batch a
route accepted, head-end references, withdrawals) and of the inbound side (delivery reports and
device answers matched to their deliveries). Every transition records its events in the
same transaction (gateway/store/events.py).

Functions that take a connection write in the caller's transaction (`Store.transaction()`, or the
connection a store function gives its callback); those that take the engine open their own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.model import AgreementState
from gateway.store import events, price_acks
from gateway.store.bulk import ID_CHUNK, ids_condition, insert_many
from gateway.store.schema import agreement_premises, agreements, han_deliveries, han_device_states, han_transitions

# Delivery (per premise) states.
QUEUED = "queued"
SUBMITTED = "submitted"
DELIVERED = "delivered"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
UNKNOWN = "unknown"
"""Submitted, and no delivery report came within the bound (`[pipeline] confirm_within_seconds`):
the route took it, whether it reached the meter is not known. A late report still moves it."""
PENDING_STATES = (QUEUED,)
FINAL_STATES = (FAILED, EXPIRED, CANCELLED)
SENT_STATES = (SUBMITTED, UNKNOWN, DELIVERED)
"""A route took it: it is, or may be, at the premise (what a cancel or a withdrawal must reach)."""
REPORTABLE = (QUEUED, SUBMITTED, UNKNOWN, EXPIRED)
"""What a delivery report moves to `delivered`: besides the open states, `unknown` and `expired`
(a report that came after the bound ended the item: the report is what happened; `queued`: a
fast route's report may overtake the dispatcher's record of the batch)."""

MAX_REFERENCE = 100  # the `reference` column's width
_D = han_deliveries.c


class DueDelivery(NamedTuple):
    """A queued delivery whose time has come, as the dispatcher reads it: not its timestamps and
    notes (fewer values to convert per row). A NamedTuple: built from the database row in one
    call, read by name at the cost of a tuple index."""

    id: int
    request_id: int
    party_id: int | None
    """None: the operator's own device write."""
    esi_id: str
    agreement_id: int | None
    se_id: int | None
    se_version: str
    cluster_id: int
    command: str
    fields: str | None
    """JSON; None: the request's (a fan-out's rows share their request's command). No frame: the
    routes that send frames encode it (ams_adapters/se_frames.py)."""
    attempts: int
    expires_raw: str | datetime
    """As the driver returns it (SQLite: naive UTC text, PostgreSQL: a datetime): converted once
    per distinct value by `expires_unix`, since a fan-out's rows all share one end time."""
    target_eui64: str | None
    """A device write's one device; None: the premise's capable devices."""
    in_force: int
    """1 when the delivery has no agreement or its agreement is still in force, else 0."""


# What the dispatcher reads of a due row (`DueDelivery` without `in_force`).
DUE_COLUMNS = (
    _D.id, _D.request_id, _D.party_id, _D.esi_id, _D.agreement_id, _D.se_id, _D.se_version, _D.cluster_id,
    _D.command, _D.fields, _D.attempts, sa.type_coerce(_D.expires_at, sa.String).label("expires_raw"),
    _D.target_eui64,
)


@functools.lru_cache(maxsize=1024)
def expires_unix(raw: str | datetime) -> float:
    """A due delivery's `expires_raw` as unix seconds."""
    moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class Transition:
    delivery_id: int
    request_id: int
    party_id: int | None  # None: the operator's request (a device write)
    esi_id: str
    eui64: str | None
    state: str
    at: datetime
    detail: str | None = None


# ---------------------------------------------------------------------------------- writes in a transaction


async def insert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Delivery rows (all columns but id, reference and reason) in one executemany."""
    await insert_many(conn, han_deliveries, rows)


async def record_transitions(conn: AsyncConnection, items: Sequence[Transition]) -> None:
    """History rows, device states, and one event per transition for a party with an event channel
    (gateway/store/events.py: in the log and queued for its webhooks)."""
    if not items:
        return
    await insert_many(conn, han_transitions, [
        {"delivery_id": t.delivery_id, "eui64": t.eui64, "state": t.state, "at": t.at,
         "detail": t.detail} for t in items])
    for t in items:
        if t.eui64 is None:
            continue
        updated = await conn.execute(han_device_states.update().where(
            han_device_states.c.delivery_id == t.delivery_id,
            han_device_states.c.eui64 == t.eui64).values(state=t.state, at=t.at, detail=t.detail))
        if not updated.rowcount:
            await conn.execute(han_device_states.insert().values(
                delivery_id=t.delivery_id, eui64=t.eui64, state=t.state, at=t.at, detail=t.detail))
    await _webhook_events(conn, items)


async def _webhook_events(conn: AsyncConnection, items: Sequence[Transition],
                          with_channel: set[int] | None = None) -> None:
    """One event per transition (gateway/store/events.py), for the parties with an event channel
    only (the cost rule: a fan-out's parties without one get no event row)."""
    # The operator's device writes (party None) have no events.
    if with_channel is None:
        with_channel = await events.party_has_event_channel(
            conn, {t.party_id for t in items if t.party_id is not None})
    if not with_channel:
        return
    await events.record_events(conn, [events.NewEvent(
        t.party_id, "delivery.device_state" if t.eui64 else "delivery.state", events.subject_of_request(t.request_id),
        {"request_id": t.request_id, "delivery_id": t.delivery_id, "esi_id": t.esi_id, "eui64": t.eui64,
         "state": t.state, "at": t.at.isoformat(), "detail": t.detail}, t.at)
        for t in items if t.party_id is not None and t.party_id in with_channel], with_channel=with_channel)


async def set_state(conn: AsyncConnection, rows: Iterable[Any], state: str, now: datetime,
                    *, reason: str | None = None, reference: str | None = None,
                    only_from: Sequence[str] | None = None) -> list[Transition]:
    """Move deliveries (rows with id, request_id, party_id, esi_id) to `state`, in one statement;
    only the rows that really changed (RETURNING) get a transition."""
    by_id = {row.id: row for row in rows}
    if not by_id:
        return []
    values: dict[str, Any] = {"state": state, "updated_at": now, "next_attempt_at": None}
    if reason is not None:
        values["reason"] = reason[:300]
    if reference is not None:
        values["reference"] = reference
    changed: list[int] = []
    ids = list(by_id)
    for i in range(0, len(ids), 500):  # bound the IN list (SQLite's variable limit)
        query = han_deliveries.update().where(_D.id.in_(ids[i:i + 500]))
        if only_from is not None:
            # `state || ''`: a filter, not an index term. With one state the planner (SQLite)
            # would otherwise walk ix_han_deliveries_due over every row in that state (a whole
            # fan-out's queue) instead of looking the ids up by primary key.
            query = query.where(_D.state.concat("").in_(only_from))
        result = await conn.execute(query.values(**values).returning(_D.id))
        changed.extend(result.scalars().all())
    out = [Transition(i, by_id[i].request_id, by_id[i].party_id, by_id[i].esi_id, None, state, now, reason)
           for i in changed]
    await record_transitions(conn, out)
    return out


async def mark_submitted(conn: AsyncConnection, rows: Sequence[DueDelivery], now: datetime,
                         confirm_by: datetime | None = None) -> int:
    """Queued deliveries the route accepted become `submitted`, set-based: per chunk of ids one
    UPDATE … RETURNING id, which also records the time (`submitted_at`). That one row version is
    the item's `submitted` history entry and its frame-log `out` record (what was handed to the
    route for the home: its command, premise, request and agreement are on the row and never
    change), read from the row by `han_requests.history_of` and the audit query in
    docs/pipeline.md, so a batch of thousands of premises costs one statement per chunk and no
    other row per premise: a han_transitions and a han_frame_log insert per premise were 15 % of a
    million-premise fan-out on PostgreSQL (docs/state-scale.md). Events (one per
    transition) are built only for parties with an event channel (events.py). Returns how many rows changed.

    `confirm_by` is when a still-`submitted` delivery is looked at again (`read_unconfirmed`):
    kept in `next_attempt_at`, which a submitted row does not use otherwise, so the sweep reads
    it through `ix_han_deliveries_due` (state, next_attempt_at) with no index of its own and no
    extra write. Device writes have their own end (`no_answer` at their end time) and get none.

    Not a HOT update (PostgreSQL writes every index entry of the row again): `state` and
    `next_attempt_at` are the queue index's columns, and a partial index over queued rows would
    not help, as PostgreSQL counts the columns of an index's predicate as indexed too (measured:
    0 of 1,000 such updates HOT)."""
    ids = [r.id for r in rows]
    changed: list[int] = []
    for i in range(0, len(ids), ID_CHUNK):
        result = await conn.execute(han_deliveries.update().where(
            ids_condition(_D.id, ids[i:i + ID_CHUNK]),
            # a filter, not an index term: see set_state
            _D.state.concat("").in_(PENDING_STATES)).values(
            state=SUBMITTED, updated_at=now, submitted_at=now,
            next_attempt_at=None if confirm_by is None else sa.case(
                (_D.target_eui64.is_(None), sa.literal(confirm_by, _D.next_attempt_at.type)), else_=sa.null()),
        ).returning(_D.id))
        changed.extend(result.scalars().all())
    with_channel = await events.party_has_event_channel(
        conn, {r.party_id for r in rows if r.party_id is not None}) if changed else set()
    if with_channel:
        by_id = {r.id: r for r in rows}
        await _webhook_events(conn, [Transition(i, by_id[i].request_id, by_id[i].party_id, by_id[i].esi_id,
                                                None, SUBMITTED, now) for i in changed
                                     if by_id[i].party_id in with_channel], with_channel)
    return len(changed)


_SET_REFERENCE = han_deliveries.update().where(_D.id == sa.bindparam("b_id")).values(
    reference=sa.bindparam("b_reference"))


async def keep_references(conn: AsyncConnection, pairs: Iterable[tuple[int, str | None]]) -> None:
    """Head-end references per delivery: the route's own id for an item (a head-end transaction
    id, `SubmitResult.reference` / `DeliveredToMeter.reference`), kept so that an operator can find
    the item in the head-end's logs (shown in `GET /v1/han-requests/{id}/deliveries`). (delivery
    id, reference) pairs in one executemany; items without one are skipped."""
    params = [{"b_id": delivery_id, "b_reference": ref[:MAX_REFERENCE]} for delivery_id, ref in pairs if ref]
    if params:
        await conn.execute(_SET_REFERENCE, params)


# ---------------------------------------------------------------------------------- the dispatcher


async def read_due(engine: AsyncEngine, now: datetime, limit: int, *,
                   lease: timedelta | None = None) -> list[DueDelivery]:
    """Due deliveries, shared fairly: each party with due work gets an equal part of `limit`,
    oldest due first. Each says whether its agreement is still in force (asked in the same query:
    a primary-key lookup per row in SQL rather than a pass over the rows in Python).

    With a `lease` (PostgreSQL: several instances share the database; a SQLite file has one
    instance, which reads without claiming) the rows are claimed: per party one
    `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, which pushes each row's
    `next_attempt_at` to `now + lease` in the same statement. Another instance skips the rows
    locked by a claim in progress and no longer sees the claimed ones as due; if the claiming
    instance dies before it records the route's answer (which overwrites `next_attempt_at`), the
    rows fall due again when the lease ends and any instance takes them (the route's idempotency
    by outbound id keeps that from reaching a home twice). Fairness between parties holds across
    instances: each claims its share of every party's due rows."""
    opened = engine.begin() if lease is not None else engine.connect()
    async with opened as conn:
        parties = (await conn.execute(sa.select(_D.party_id).where(
            _D.state == QUEUED, _D.next_attempt_at <= now).group_by(_D.party_id))).scalars().all()
        if not parties:
            return []
        share = max(1, limit // len(parties))
        in_force = sa.case((sa.or_(_D.agreement_id.is_(None), sa.exists().where(
            agreements.c.id == _D.agreement_id, agreements.c.state == AgreementState.ACTIVE.value,
            agreements.c.ends_at > now).correlate(han_deliveries)), 1), else_=0).label("in_force")
        rows: list[DueDelivery] = []
        for party_id in parties:
            # Oldest due first, in the order of ix_han_deliveries_due (no sort of the queue).
            due = (_D.state == QUEUED, _D.next_attempt_at <= now, _D.party_id == party_id)
            order = (_D.next_attempt_at, _D.id)
            query: Any
            if lease is None:
                query = sa.select(*DUE_COLUMNS, in_force).where(*due).order_by(*order).limit(share)
            else:
                # A CTE: evaluated once (PostgreSQL could run an IN subquery with SKIP LOCKED more
                # than once and claim more than `share`).
                # A premise's deliveries go in id order, whichever instance claims them: a row is
                # taken only while no earlier row of its premise is still queued (claimed by another
                # instance and unfinished, or waiting for its retry). So of one premise's due rows
                # at most its first is claimed, and the next only once that one has been recorded.
                # (ix_han_deliveries_queued_esi: one probe per candidate row.)
                earlier = han_deliveries.alias("earlier")
                first_of_premise = ~sa.exists().where(
                    earlier.c.esi_id == _D.esi_id, earlier.c.state == QUEUED, earlier.c.id < _D.id)
                picked = sa.select(_D.id).where(*due, first_of_premise).order_by(*order).limit(
                    share).with_for_update(skip_locked=True).cte("picked")
                query = han_deliveries.update().where(_D.id.in_(sa.select(picked.c.id))).values(
                    next_attempt_at=now + lease).returning(*DUE_COLUMNS, in_force)
            claimed = list(map(DueDelivery._make, (await conn.execute(query)).all()))
            if lease is not None:
                claimed.sort(key=lambda r: r.id)  # RETURNING has no order
            rows.extend(claimed)
    return rows


async def release_claimed(engine: AsyncEngine, ids: Sequence[int], lease_until: datetime, now: datetime) -> int:
    """A graceful stop hands back the rows a pass claimed (`read_due` with a lease ending at
    `lease_until`) and did not get to record: due again `now`, for another instance, instead of
    when the lease ends. Only rows still queued under that very lease (no other instance claimed
    them since: its lease would end at another time). How many were handed back."""
    handed = 0
    async with engine.begin() as conn:
        for i in range(0, len(ids), 1000):
            result = await conn.execute(han_deliveries.update().where(
                _D.id.in_(list(ids[i:i + 1000])), _D.state == QUEUED, _D.next_attempt_at == lease_until).values(
                next_attempt_at=now))
            handed += int(result.rowcount or 0)
    return handed


async def read_in_flight(engine: AsyncEngine, esi_ids: Sequence[str], limit: int) -> list[DueDelivery]:
    """Up to `limit` deliveries of these premises that were handed to a route and have no outcome
    stored (`submitted`), read as `read_due` reads due ones (in_force 1: they are not sent again by
    this, only asked about)."""
    if not esi_ids:
        return []
    async with engine.connect() as conn:
        return list(map(DueDelivery._make, (await conn.execute(sa.select(
            *DUE_COLUMNS, sa.literal(1).label("in_force")).where(
            _D.esi_id.in_(list(esi_ids)), _D.state == SUBMITTED).order_by(_D.id).limit(limit))).all()))


async def read_expired(engine: AsyncEngine, now: datetime, limit: int) -> list[Any]:
    """Up to `limit` queued deliveries whose end time has passed (id, request_id, party_id, esi_id)."""
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(_D.id, _D.request_id, _D.party_id, _D.esi_id).where(
            _D.state == QUEUED, _D.expires_at <= now).limit(limit))).all())


async def read_unconfirmed(engine: AsyncEngine, now: datetime, limit: int) -> list[Any]:
    """Up to `limit` deliveries still `submitted` past their confirmation time (`mark_submitted`'s
    `confirm_by`): id, request_id, party_id, esi_id, expires_at. Read through ix_han_deliveries_due."""
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(_D.id, _D.request_id, _D.party_id, _D.esi_id, _D.expires_at).where(
            _D.state == SUBMITTED, _D.next_attempt_at <= now).order_by(_D.next_attempt_at).limit(limit))).all())


async def move(engine: AsyncEngine, rows: Sequence[Any], state: str, now: datetime, *, reason: str,
               only_from: Sequence[str]) -> list[Transition]:
    """`set_state` in a transaction of its own."""
    async with engine.begin() as conn:
        return await set_state(conn, rows, state, now, reason=reason, only_from=only_from)


async def record_batch(engine: AsyncEngine, accepted: Sequence[tuple[DueDelivery, str | None]],
                       rejected: Sequence[tuple[DueDelivery, str]], now: datetime,
                       confirm_by: datetime | None = None) -> None:
    """What a route answered for a batch, in one transaction, set-based: the accepted rows become
    `submitted` with their transitions and frame log in a few statements and their references in
    one executemany; each rejected row becomes `failed` with the route's reason."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Not waiting for this commit's WAL flush: losing it in a server crash (at most
            # 3 × wal_writer_delay of commits) leaves these rows `queued`, so they are handed to
            # the route again under the same outbound ids (the delivery ids), which the route's
            # idempotency absorbs. (WAL is sequential: a later synchronous commit, e.g. a
            # delivery report, makes this one durable too.) What was seen of it before the crash
            # is seen again: a `submitted` webhook event sent from it is queued anew with the
            # resend, so a receiver may get it twice (the event's state and time tell). Never for
            # a request's acceptance or a fan-out page: rows and ids that a client or a route
            # already saw would be lost.
            await conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
        await mark_submitted(conn, [row for row, _ in accepted], now, confirm_by)
        await keep_references(conn, [(row.id, ref) for row, ref in accepted])
        for row, reason in rejected:
            await set_state(conn, [row], FAILED, now, reason=reason, only_from=[QUEUED])


_RETRY = han_deliveries.update().where(_D.id == sa.bindparam("b_id"), _D.state == QUEUED).values(
    attempts=_D.attempts + 1, next_attempt_at=sa.bindparam("b_next", type_=_D.next_attempt_at.type),
    reason=sa.bindparam("b_reason"), updated_at=sa.bindparam("b_now", type_=_D.updated_at.type))


async def reschedule(engine: AsyncEngine, delays: Sequence[tuple[int, float]], now: datetime, reason: str) -> None:
    """Still-queued deliveries (id, seconds from now) try again later: one more attempt counted,
    the reason kept; in one transaction (one executemany)."""
    if delays:
        async with engine.begin() as conn:
            await conn.execute(_RETRY, [{"b_id": delivery_id, "b_next": now + timedelta(seconds=delay),
                                         "b_reason": reason[:300], "b_now": now} for delivery_id, delay in delays])


async def defer(engine: AsyncEngine, ids: Sequence[int], until: datetime) -> None:
    """Queued deliveries this instance may not send (another instance drives their route) are
    looked at again at `until`, no attempt counted: not a failure, only not this instance's."""
    if ids:
        async with engine.begin() as conn:
            await conn.execute(han_deliveries.update().where(
                _D.id.in_(list(ids)), _D.state == QUEUED).values(next_attempt_at=until))


async def make_due(engine: AsyncEngine, esi_ids: Sequence[str], now: datetime) -> int:
    """The queued deliveries of these premises are due now (a route that reaches them came back,
    e.g. a radio's new owner after a failover): the backoff their retries built up while nobody
    could send them is dropped, the attempts already counted stay. Returns how many."""
    if not esi_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(han_deliveries.update().where(
            _D.esi_id.in_(list(esi_ids)), _D.state == QUEUED, _D.next_attempt_at > now).values(
            next_attempt_at=now, updated_at=now))
    return int(result.rowcount or 0)


# Sent texts and load-control events of an ended agreement: what its withdrawal cancels at the premises.
WITHDRAWN_COMMANDS = ("display_message", "load_control_event")


async def withdrawable(engine: AsyncEngine, agreement_ids: Sequence[int], now: datetime,
                       limit: int) -> tuple[list[Any], set[int]]:
    """Up to `limit` deliveries (id, request_id, party_id, esi_id, agreement_id) of the agreements
    that are still ended (a renewal may have put one back in force) whose text or event was sent
    and has not ended, found through the agreements' premises; and the agreement ids looked at
    (all of them unless the limit stopped the search early)."""
    still_ended = sa.or_(agreements.c.state != AgreementState.ACTIVE.value, agreements.c.ends_at <= now)
    rows: list[Any] = []
    probed: set[int] = set()
    async with engine.connect() as conn:
        for i in range(0, len(agreement_ids), 500):
            chunk = agreement_ids[i:i + 500]
            probed.update(chunk)
            rows.extend((await conn.execute(sa.select(
                _D.id, _D.request_id, _D.party_id, _D.esi_id, _D.agreement_id).select_from(
                agreement_premises.join(han_deliveries, sa.and_(
                    _D.esi_id == agreement_premises.c.esi_id,
                    _D.agreement_id == agreement_premises.c.agreement_id)).join(
                    agreements, agreements.c.id == agreement_premises.c.agreement_id)).where(
                agreement_premises.c.agreement_id.in_(chunk), _D.state.in_(SENT_STATES),
                _D.command.in_(WITHDRAWN_COMMANDS), _D.expires_at > now, still_ended).limit(
                limit - len(rows)))).all())
            if len(rows) >= limit:
                break
    return rows, probed


# ---------------------------------------------------------------------------------- inbound


async def mark_delivered(conn: AsyncConnection, reports: dict[int, tuple[datetime, str | None]],
                         ack_window: timedelta | None = None) -> list[Any]:
    """Delivery reports (delivery id -> (time, route reference)) in the caller's transaction: the
    deliveries still `queued`, `submitted`, `unknown` or `expired` (REPORTABLE) become `delivered`
    (a replayed report finds them delivered already and changes nothing). Three statements for the
    whole batch: read, one executemany, the transitions (a fourth, the requests' commands, when a fan-out's price asking
    for acknowledgement is among them). A price or block period that asks its devices to
    acknowledge awaits them until `ack_window` after its delivery (`ack_due_at`; None: not
    awaited). Returns the rows that moved (id, request_id, party_id, esi_id, command, se_id, state)."""
    rows: list[Any] = []
    ids = list(reports)
    for i in range(0, len(ids), 500):  # bound the IN list (SQLite's variable limit)
        rows.extend((await conn.execute(sa.select(
            _D.id, _D.request_id, _D.party_id, _D.esi_id, _D.command, _D.se_id, _D.state, _D.fields).where(
            _D.id.in_(ids[i:i + 500])))).all())
    moving = [r for r in rows if r.state in REPORTABLE]
    if not moving:
        return []
    awaited = await price_acks.asking(conn, moving) if ack_window is not None else set()
    # The state condition is repeated so that the update, not the read, decides.
    await conn.execute(han_deliveries.update().where(
        # OR of equalities, not IN: with an IN list (an expanding parameter) this executemany
        # moved only one of its rows (seen on SQLite)
        _D.id == sa.bindparam("b_id"), sa.or_(*(_D.state == state for state in REPORTABLE))).values(
        state=DELIVERED, updated_at=sa.bindparam("b_at"), next_attempt_at=None,
        reference=sa.func.coalesce(sa.bindparam("b_reference", type_=sa.String), _D.reference),
        ack_due_at=sa.bindparam("b_ack_due", type_=_D.ack_due_at.type)),
        [{"b_id": r.id, "b_at": reports[r.id][0], "b_reference": (reports[r.id][1] or "")[:MAX_REFERENCE] or None,
          "b_ack_due": reports[r.id][0] + ack_window if ack_window is not None and r.id in awaited else None}
         for r in moving])
    await record_transitions(conn, [Transition(r.id, r.request_id, r.party_id, r.esi_id, None, DELIVERED,
                                               reports[r.id][0]) for r in moving])
    return moving


async def find(conn: AsyncConnection, delivery_id: int) -> Any | None:
    """The delivery (id, request_id, party_id, esi_id, command, se_id), or None."""
    return (await conn.execute(sa.select(_D.id, _D.request_id, _D.party_id, _D.esi_id, _D.command, _D.se_id).where(
        _D.id == delivery_id))).first()


async def originals(conn: AsyncConnection, esi_id: str, se_id: int | None, commands: Sequence[str]) -> list[Any]:
    """The premise's deliveries (id, request_id, party_id, esi_id) of `commands` carrying SE id
    `se_id`: what a cancel of that id refers to."""
    return list((await conn.execute(sa.select(_D.id, _D.request_id, _D.party_id, _D.esi_id).where(
        _D.esi_id == esi_id, _D.se_id == se_id, _D.command.in_(commands)))).all())


async def answered(conn: AsyncConnection, wanted: Sequence[tuple[str, int]],
                   commands: Sequence[str]) -> dict[tuple[str, int], Any]:
    """(ESI ID, SE id) -> the newest delivery of `commands` with that SE id at that premise (id,
    request_id, party_id, esi_id, agreement_id, se_id): what a device's answer refers to."""
    matched: dict[tuple[str, int], Any] = {}
    for i in range(0, len(wanted), 200):
        for found in (await conn.execute(sa.select(
                _D.id, _D.request_id, _D.party_id, _D.esi_id, _D.agreement_id, _D.se_id).where(
                sa.tuple_(_D.esi_id, _D.se_id).in_(wanted[i:i + 200]), _D.command.in_(commands)))).all():
            key = (found.esi_id, int(found.se_id))
            if key not in matched or found.id > matched[key].id:
                matched[key] = found
    return matched


async def handed_items(engine: AsyncEngine, ids: Sequence[int]) -> list[Any]:
    """The deliveries among `ids` (id, esi_id, expires_at): what a route's notice about one of
    them is checked against, whichever gateway instance handed it to the route. Primary-key
    lookups: nothing per delivery is written for it."""
    rows: list[Any] = []
    async with engine.connect() as conn:
        for i in range(0, len(ids), 500):  # bound the IN list (SQLite's variable limit)
            rows.extend((await conn.execute(sa.select(_D.id, _D.esi_id, _D.expires_at).where(
                _D.id.in_(ids[i:i + 500])))).all())
    return rows
