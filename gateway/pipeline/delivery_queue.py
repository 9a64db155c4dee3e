"""The pipeline's tables: the HAN delivery queue (`han_deliveries`, one row per premise and SE
event), state transitions with their times,
SE id allocation, and the webhook events each transition produces (in the same transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.pipeline.requests import Command
from gateway.store.schema import (
    han_deliveries,
    han_device_states,
    han_frame_log,
    han_transitions,
    se_id_counters,
    webhook_outbox,
    webhooks,
)

# Delivery (per premise) states.
QUEUED = "queued"
SUBMITTED = "submitted"
DELIVERED = "delivered"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
PENDING_STATES = (QUEUED,)
FINAL_STATES = (FAILED, EXPIRED, CANCELLED)

# The counters start above small ids other systems on a meter may already have used.
SE_ID_START = 0x10000


def outbound_id(delivery_id: int) -> str:
    return f"hgw-{delivery_id}"


def delivery_of(outbound: str) -> int | None:
    if outbound.startswith("hgw-") and outbound[4:].isdigit():
        return int(outbound[4:])
    return None


async def allocate_se_id(conn: AsyncConnection, name: str = "se_id") -> int:
    """The next id of the gateway-wide counter (message ids and issuer event ids share it, so
    every id the gateway ever sends into any home is unique and increasing). One atomic
    UPDATE … RETURNING: concurrent requests never read the same value (PostgreSQL locks the row,
    SQLite has one writer); being the transaction's first statement, it also serializes the
    arbitration reads that follow."""
    result = await conn.execute(se_id_counters.update().where(se_id_counters.c.name == name).values(
        value=se_id_counters.c.value + 1).returning(se_id_counters.c.value))
    value = result.scalar()
    if value is None:  # a database made without the migration's seed row
        await conn.execute(se_id_counters.insert().values(name=name, value=SE_ID_START))
        return SE_ID_START
    return int(value)


@dataclass(frozen=True)
class DeliveryTarget:
    esi_id: str
    se_version: str
    agreement_id: int | None


def shared_command(command: Command) -> str:
    """The request-level command (JSON): the SE command and its fields, stored once for all the
    request's premises (a fan-out to a million premises stores them once). No frame: the routes
    that send frames encode the fields for each meter's SE version (ams_adapters/se_frames.py)."""
    return json.dumps({"cluster_id": int(command.cluster_id), "command": command.command,
                       "fields": command.fields}, default=str)


async def insert_many(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) as one executemany. The statement is compiled once
    and each column's bind conversion runs once per distinct value (a fan-out page repeats its
    timestamps and ids thousands of times), so a row costs a tuple, not a pass through the
    per-row parameter machinery. Same SQL, same stored values as `conn.execute(table.insert(), rows)`."""
    if not rows:
        return
    dialect = conn.dialect
    keys = list(rows[0])
    compiled = table.insert().compile(dialect=dialect, column_keys=keys)
    order = compiled.positiontup
    if not compiled.positional or order is None or sorted(order) != sorted(keys):
        await conn.execute(table.insert(), list(rows))
        return
    converters: list[Any] = []
    for key in order:
        process = table.c[key].type.bind_processor(dialect)
        if process is None:
            converters.append(None)
        else:
            memo: dict[Any, Any] = {}

            def convert(value: Any, process: Any = process, memo: dict[Any, Any] = memo) -> Any:
                try:
                    return memo[value]
                except KeyError:
                    out = memo[value] = process(value)
                    return out
                except TypeError:  # unhashable
                    return process(value)

            converters.append(convert)
    plain = [k for k, c in zip(order, converters, strict=True) if c is None]
    if len(plain) == len(order):
        params = [tuple(row[k] for k in order) for row in rows]
    else:
        pairs = list(zip(order, converters, strict=True))
        params = [tuple(row[k] if c is None else c(row[k]) for k, c in pairs) for row in rows]
    await conn.exec_driver_sql(compiled.string, params)


async def insert_deliveries(conn: AsyncConnection, *, request_id: int, party_id: int,
                            se_id: int | None, command: Command, targets: Sequence[DeliveryTarget],
                            now: datetime, expires_at: datetime | None = None,
                            shared: bool = True, cancels_request_id: int | None = None) -> None:
    """One delivery row per premise, queued now. With `shared` the rows use the request's command
    (`shared_command`, stored on the request); otherwise each row carries its own fields (the
    `frame` column stays NULL; rows written by earlier versions may hold one, which only the deliveries API shows).
    A cancel's rows name the request they cancel (`cancels_request_id`)."""
    await insert_many(conn, han_deliveries, delivery_rows(
        request_id=request_id, party_id=party_id, se_id=se_id, command=command, targets=targets, now=now,
        expires_at=expires_at, shared=shared, cancels_request_id=cancels_request_id))


def delivery_rows(*, request_id: int, party_id: int | None, se_id: int | None, command: Command,
                  targets: Sequence[DeliveryTarget], now: datetime, expires_at: datetime | None = None,
                  shared: bool = True, cancels_request_id: int | None = None) -> list[dict[str, Any]]:
    """The delivery rows of `insert_deliveries` (several requests' rows go into one INSERT when
    acceptances are committed as a group)."""
    if not targets:
        return []
    fields_json = None if shared else json.dumps(command.fields, default=str)
    rows = []
    for t in targets:
        rows.append({
            "request_id": request_id, "party_id": party_id, "esi_id": t.esi_id,
            "agreement_id": t.agreement_id, "se_id": se_id, "se_version": t.se_version,
            "cluster_id": int(command.cluster_id), "command": command.command, "fields": fields_json,
            "frame": None, "state": QUEUED, "attempts": 0, "next_attempt_at": now,
            "expires_at": expires_at or command.ends_at, "created_at": now, "updated_at": now,
            "cancels_request_id": cancels_request_id,
        })
    return rows


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


async def record_transitions(conn: AsyncConnection, items: Sequence[Transition]) -> None:
    """History rows, device states, and one webhook event per registered webhook of the party."""
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


async def _webhook_events(conn: AsyncConnection, items: Sequence[Transition]) -> None:
    """One webhook event per transition for each registered webhook of its party."""
    parties = {t.party_id for t in items}
    hooks = (await conn.execute(sa.select(webhooks.c.id, webhooks.c.party_id).where(
        webhooks.c.party_id.in_(parties), webhooks.c.deleted_at.is_(None)))).all()
    if not hooks:
        return
    by_party: dict[int | None, list[int]] = {}  # the operator (None) registers no webhooks
    for hook_id, party_id in hooks:
        by_party.setdefault(party_id, []).append(hook_id)
    rows = []
    for t in items:
        body = json.dumps({
            "type": "delivery.device_state" if t.eui64 else "delivery.state",
            "request_id": t.request_id, "delivery_id": t.delivery_id, "esi_id": t.esi_id,
            "eui64": t.eui64, "state": t.state, "at": t.at.isoformat(), "detail": t.detail,
        })
        for hook_id in by_party.get(t.party_id, []):
            rows.append({"webhook_id": hook_id, "request_id": t.request_id, "body": body,
                         "created_at": t.at, "attempts": 0, "next_attempt_at": t.at})
    if rows:
        await conn.execute(webhook_outbox.insert(), rows)


async def set_delivery_state(conn: AsyncConnection, rows: Iterable[Any], state: str, now: datetime,
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
        query = han_deliveries.update().where(han_deliveries.c.id.in_(ids[i:i + 500]))
        if only_from is not None:
            # `state || ''`: a filter, not an index term. With one state the planner (SQLite)
            # would otherwise walk ix_han_deliveries_due over every row in that state (a whole
            # fan-out's queue) instead of looking the ids up by primary key.
            query = query.where(han_deliveries.c.state.concat("").in_(only_from))
        result = await conn.execute(query.values(**values).returning(han_deliveries.c.id))
        changed.extend(result.scalars().all())
    out = [Transition(i, by_id[i].request_id, by_id[i].party_id, by_id[i].esi_id, None, state, now, reason)
           for i in changed]
    await record_transitions(conn, out)
    return out


async def log_frame(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await insert_many(conn, han_frame_log, rows)


# Bound on bind parameters per statement (SQLite >= 3.32 and asyncpg allow 32,766).
ID_CHUNK = 5000
MAX_RANGES = 32


def ids_condition(column: Any, ids: Sequence[int]) -> Any:
    """`column IN ids`, written as a few `BETWEEN`s when the ids form few runs (a fan-out's batch
    is one run of consecutive ids): two bind parameters instead of thousands to process."""
    ordered = sorted(ids)
    runs: list[list[int]] = []
    for i in ordered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
            if len(runs) > MAX_RANGES:
                return column.in_(ordered)
    return sa.or_(*(column == a if a == b else column.between(a, b) for a, b in runs))


async def mark_submitted(conn: AsyncConnection, rows: Sequence[Any], now: datetime) -> int:
    """Queued deliveries the route accepted become `submitted`, set-based: per chunk of ids one
    UPDATE … RETURNING id, then the transitions and the frame log (the frame sent into the home)
    written by INSERT … SELECT from the changed rows, so a batch of thousands of premises costs
    three statements and no Python object per premise. Webhook events (one per transition) are
    built only for parties that registered webhooks. `rows` start (id, request_id, party_id,
    esi_id), as the dispatcher's due rows do. Returns how many rows changed."""
    ids = [r[0] for r in rows]  # rows start with the delivery id (positional: cheaper than .id)
    changed: list[int] = []
    for i in range(0, len(ids), ID_CHUNK):
        result = await conn.execute(han_deliveries.update().where(
            ids_condition(han_deliveries.c.id, ids[i:i + ID_CHUNK]),
            # a filter, not an index term: see set_delivery_state
            han_deliveries.c.state.concat("").in_(PENDING_STATES)).values(
            state=SUBMITTED, updated_at=now, next_attempt_at=None).returning(han_deliveries.c.id))
        done = list(result.scalars().all())
        if not done:
            continue
        changed.extend(done)
        d = han_deliveries.c
        source = sa.select(d.id).where(ids_condition(d.id, done))
        await conn.execute(han_transitions.insert().from_select(
            ["delivery_id", "eui64", "state", "at", "detail"], source.with_only_columns(
                d.id, sa.null(), sa.literal(SUBMITTED, sa.String), sa.literal(now, han_transitions.c.at.type),
                sa.null())))
        # NULL frame: the gateway hands on the SE fields (han_requests.command, or the delivery's
        # own); a frame route encodes them for the delivery's SE version, a MultiSpeak/61968-9
        # head-end encodes its own (docs/pipeline.md, "Audit").
        await conn.execute(han_frame_log.insert().from_select(
            ["at", "direction", "esi_id", "eui64", "request_id", "delivery_id", "agreement_id", "cluster_id",
             "command", "frame"], source.with_only_columns(
                sa.literal(now, han_frame_log.c.at.type), sa.literal("out", sa.String), d.esi_id, sa.null(),
                d.request_id, d.id, d.agreement_id, d.cluster_id, d.command, d.frame)))
    if changed:
        parties = {r[2] for r in rows}
        if (await conn.execute(sa.select(webhooks.c.id).where(
                webhooks.c.party_id.in_(parties), webhooks.c.deleted_at.is_(None)).limit(1))).first():
            by_id = {r.id: r for r in rows}
            await _webhook_events(conn, [Transition(i, by_id[i].request_id, by_id[i].party_id, by_id[i].esi_id,
                                                    None, SUBMITTED, now) for i in changed])
    return len(changed)
