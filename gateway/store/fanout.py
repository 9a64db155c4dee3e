"""Fan-out in SQL: which premises a party may reach (one keyset page at a time) and the page's
delivery rows written by one INSERT … SELECT, so a page of thousands of premises costs a few
statements and no Python object per premise (the request's command and fields are stored once,
on the request)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.limits import (
    DEVICES_PER_ENHANCED_METER,
    DEVICES_PER_METER,
    LOAD_CONTROL_DEVICE_TYPES,
    SLOT_HOLDERS,
)
from gateway.domain.model import AgreementKind, AgreementState, Scope
from gateway.store.deliveries import DUE_COLUMNS, DueDelivery
from gateway.store.schema import agreement_premises, agreements, han_deliveries, han_devices, premises

# Devices registered at the premise that hold one of its meter's slots (index (esi_id, eui64)).
_HELD = sa.and_(han_devices.c.esi_id == premises.c.esi_id, han_devices.c.status.in_([s.value for s in SLOT_HOLDERS]))
# Whether the premise's meter serves every device registered there (gateway/domain/limits.py): a
# premise over its limit (a meter swapped for a smaller one, registrations left behind) is excluded
# with `device_limit`, never sent to.
WITHIN_DEVICE_LIMIT = sa.select(sa.func.count()).where(_HELD).scalar_subquery() <= sa.case(
    (premises.c.enhanced_meter, DEVICES_PER_ENHANCED_METER), else_=DEVICES_PER_METER)


def in_scope_query(*, party_id: int, kind: AgreementKind, scope: Scope | None, now: datetime,
                   after: str = "") -> sa.Select[Any]:
    """(ESI ID, agreement id) of active premises where the party has an agreement of `kind`
    (and `scope`) in force at `now`, ordered by ESI ID after `after` (add a LIMIT for a page).

    Driven by agreement_premises in ESI ID order (index (esi_id, agreement_id)) from the cursor,
    with the agreement and premise checked per row (primary-key lookups): the walk stops after the
    LIMIT, so a page costs O(page) on SQLite and PostgreSQL alike. The checks are scalar
    subqueries, not EXISTS: PostgreSQL turns an EXISTS into a join and, without statistics (a
    fan-out right after an import, before autovacuum's ANALYZE) or with them (a merge join from the
    first premise), read every premise for every page — 1,000,000 premises made that quadratic."""
    return (
        sa.select(agreement_premises.c.esi_id.label("esi_id"),
                  sa.func.min(agreement_premises.c.agreement_id).label("agreement_id"))
        .where(agreement_premises.c.esi_id > after, _in_force(party_id, kind, scope, now), _ACTIVE)
        .group_by(agreement_premises.c.esi_id)
        .order_by(agreement_premises.c.esi_id)
    )


# The premise of the agreement_premises row is active (a primary-key lookup per row).
_ACTIVE = sa.select(premises.c.status).where(
    premises.c.esi_id == agreement_premises.c.esi_id).scalar_subquery() == "active"


def _in_force(party_id: int, kind: AgreementKind, scope: Scope | None, now: datetime) -> Any:
    """The agreement of the agreement_premises row is the party's, of `kind` (and `scope`), in
    force at `now`: a primary-key lookup per row (a scalar subquery, see `in_scope_query`)."""
    conditions = [
        agreements.c.id == agreement_premises.c.agreement_id,
        agreements.c.party_id == party_id,
        agreements.c.kind == kind.value,
        agreements.c.state == AgreementState.ACTIVE.value,
        agreements.c.starts_at <= now,
        agreements.c.ends_at > now,
    ]
    if scope is not None:
        # Scopes are stored comma-separated; match the whole word (a portable LIKE).
        conditions.append((sa.literal(",") + agreements.c.scopes + sa.literal(",")).contains(
            f",{scope.value},"))
    return sa.select(agreements.c.id).where(*conditions).scalar_subquery().is_not(None)


async def page_end(conn: AsyncConnection, *, party_id: int, kind: AgreementKind, scope: Scope | None,
                   now: datetime, after: str, limit: int) -> tuple[str | None, int]:
    """The last ESI ID of the next page of at most `limit` premises after `after`, and how many
    premises the page has (fewer than `limit`: the last page)."""
    page = in_scope_query(party_id=party_id, kind=kind, scope=scope, now=now, after=after).limit(limit).subquery()
    last, count = (await conn.execute(sa.select(sa.func.max(page.c.esi_id), sa.func.count()).select_from(
        page))).one()
    return last, int(count)


def _page_rows(*, party_id: int, kind: AgreementKind, scope: Scope | None, now: datetime, after: str,
               last: str | None, default_version: str, within_limit: bool = True) -> tuple[sa.Select[Any], Any]:
    """The page (after, last] (to the end when `last` is None) with each premise's SE version
    (its default when unknown), grouped by ESI ID alone so that SQLite walks the index in order
    (no temporary B-tree) and can stop at a LIMIT. Premises within their device limit, or
    (`within_limit=False`) only those over it."""
    version = sa.func.min(sa.func.coalesce(premises.c.se_version, default_version))
    query = (
        sa.select(agreement_premises.c.esi_id, sa.func.min(agreement_premises.c.agreement_id), version)
        .join(premises, premises.c.esi_id == agreement_premises.c.esi_id)
        # The premise's ESI ID is bounded as well as the agreement_premises row's: the planner
        # does not carry a range across the join's equality, and an unbounded side may be read
        # whole (a hash or merge join over every premise, per page).
        .where(agreement_premises.c.esi_id > after, premises.c.esi_id > after, premises.c.status == "active",
               WITHIN_DEVICE_LIMIT if within_limit else sa.not_(WITHIN_DEVICE_LIMIT),
               _in_force(party_id, kind, scope, now))
        .group_by(agreement_premises.c.esi_id)
        .order_by(agreement_premises.c.esi_id)
    )
    if last is not None:
        query = query.where(agreement_premises.c.esi_id <= last, premises.c.esi_id <= last)
    return query, version


async def insert_page_deliveries(conn: AsyncConnection, *, request_id: int, se_id: int | None, party_id: int,
                                 kind: AgreementKind, scope: Scope | None, now: datetime, after: str,
                                 last: str | None, limit: int | None, default_version: str, cluster_id: int,
                                 command: str, expires_at: datetime,
                                 skip_versions: frozenset[str] = frozenset()) -> int:
    """One queued delivery row per premise of the page (after, last] or of the next `limit`
    premises after `after`, using the request's shared command (fields NULL), in one
    INSERT … SELECT; premises whose SE version is in `skip_versions` are left out (the caller
    lists them as excluded). Returns the rows inserted. (PostgreSQL: `insert_claimed_page`.)"""
    query, version = _page_rows(party_id=party_id, kind=kind, scope=scope, now=now, after=after,
                                last=last, default_version=default_version)
    if skip_versions:
        query = query.having(version.not_in(sorted(skip_versions)))
    if limit is not None:
        query = query.limit(limit)
    values = query.with_only_columns(
        sa.literal(request_id, sa.Integer), sa.literal(party_id, sa.Integer),
        agreement_premises.c.esi_id, sa.func.min(agreement_premises.c.agreement_id),
        sa.literal(se_id, sa.BigInteger), version, sa.literal(cluster_id, sa.Integer),
        sa.literal(command, sa.String), sa.null(), sa.null(), sa.literal("queued", sa.String),
        sa.literal(0, sa.Integer), sa.literal(now, han_deliveries.c.next_attempt_at.type),
        sa.literal(expires_at, han_deliveries.c.expires_at.type),
        sa.literal(now, han_deliveries.c.created_at.type), sa.literal(now, han_deliveries.c.updated_at.type),
        maintain_column_froms=True)
    result = await conn.execute(han_deliveries.insert().from_select(_INSERTED, values))
    return int(result.rowcount)


class ClaimedPage(NamedTuple):
    """A page expanded by `insert_claimed_page`: its last ESI ID (None: no premise left), how many
    premises it has (fewer than the limit: the last page), its delivery rows claimed (to send), and
    how many rows it inserted (claimed or left for `read_due`: premises with an earlier delivery
    still queued)."""

    last: str | None
    size: int
    rows: list[DueDelivery]
    inserted: int


async def insert_claimed_page(conn: AsyncConnection, *, request_id: int, se_id: int | None, party_id: int,
                              kind: AgreementKind, scope: Scope | None, now: datetime, after: str, limit: int,
                              default_version: str, cluster_id: int, command: str, expires_at: datetime,
                              skip_versions: frozenset[str] = frozenset(),
                              claimed_until: datetime) -> ClaimedPage:
    """`page_end` and `insert_page_deliveries` in one statement, for a caller that sends the
    page itself (PostgreSQL, where instances claim the rows they send): the next `limit` premises
    in scope after `after` are walked once (a CTE), their delivery rows inserted from that walk
    and returned as the dispatcher reads due rows (`DueDelivery`, in id order; in force: the walk
    checked the agreement at `now`), with the page's end and size. The rows are inserted already
    claimed, due only at `claimed_until` (the lease of `deliveries.read_due`'s claims): the
    caller hands them to their routes without claiming them again. That saves per premise the
    claim's UPDATE (a new row version, its WAL, a lock and four index entries: about 35 µs) and a
    second walk of the page (about 7 µs). A caller that dies before it recorded the route's answer
    leaves them `queued`, due when the lease ends, as any claimed row. PostgreSQL only (a
    data-modifying CTE).

    A meter gets its deliveries in id order (as `deliveries.read_due` keeps it): a premise that
    still has a delivery `queued` (claimed by an instance and unfinished, or waiting for its retry
    — every such row is older than this page's) gets its row inserted unclaimed, due at once,
    and not returned: `read_due` takes it once the earlier one is recorded. One probe of the
    partial index of queued rows (ix_han_deliveries_queued_esi) per premise. `inserted` counts
    every row, claimed or not."""
    page = in_scope_query(party_id=party_id, kind=kind, scope=scope, now=now, after=after).limit(limit).cte("page")
    version = sa.func.coalesce(premises.c.se_version, default_version)
    earlier = han_deliveries.alias("earlier")
    waits = sa.exists().where(earlier.c.esi_id == page.c.esi_id, earlier.c.state == "queued")
    due_type = han_deliveries.c.next_attempt_at.type
    chosen = sa.select(
        sa.literal(request_id, sa.Integer), sa.literal(party_id, sa.Integer), page.c.esi_id, page.c.agreement_id,
        sa.literal(se_id, sa.BigInteger), version, sa.literal(cluster_id, sa.Integer),
        sa.literal(command, sa.String), sa.null(), sa.null(), sa.literal("queued", sa.String),
        sa.literal(0, sa.Integer),
        sa.case((waits, sa.literal(now, due_type)), else_=sa.literal(claimed_until, due_type)),
        sa.literal(expires_at, han_deliveries.c.expires_at.type),
        sa.literal(now, han_deliveries.c.created_at.type), sa.literal(now, han_deliveries.c.updated_at.type),
    ).select_from(page.join(premises, premises.c.esi_id == page.c.esi_id)).where(
        WITHIN_DEVICE_LIMIT).order_by(page.c.esi_id)  # ids in ESI ID order, as the other path
    if skip_versions:
        chosen = chosen.where(version.not_in(sorted(skip_versions)))
    inserted = han_deliveries.insert().from_select(_INSERTED, chosen).returning(
        *DUE_COLUMNS, sa.literal(1).label("in_force"),
        (han_deliveries.c.next_attempt_at == sa.literal(claimed_until, due_type)).label("claimed")).cte("inserted")
    bounds = sa.select(sa.func.max(page.c.esi_id).label("last"), sa.func.count().label("n")).select_from(
        page).cte("bounds")
    result = (await conn.execute(sa.select(bounds.c.last, bounds.c.n, *inserted.c).select_from(
        bounds.outerjoin(inserted, sa.true())))).all()
    last, count = (result[0][0], int(result[0][1])) if result else (None, 0)
    made = [r for r in result if r[2] is not None]
    rows = [DueDelivery._make(r[2:-1]) for r in made if r[-1]]
    # RETURNING has no promised order; a page is handed in id order, as read_due reads it.
    return ClaimedPage(last, count, sorted(rows, key=lambda r: r.id), len(made))


# The columns a page's INSERT … SELECT writes.
_INSERTED = ["request_id", "party_id", "esi_id", "agreement_id", "se_id", "se_version", "cluster_id", "command",
             "fields", "frame", "state", "attempts", "next_attempt_at", "expires_at", "created_at", "updated_at"]


async def page_premises_with_versions(conn: AsyncConnection, *, party_id: int, kind: AgreementKind,
                                      scope: Scope | None, now: datetime, after: str, last: str,
                                      default_version: str, versions: frozenset[str],
                                      limit: int) -> list[str]:
    """Up to `limit` ESI IDs of the page (after, last] whose SE version is in `versions`."""
    query, version = _page_rows(party_id=party_id, kind=kind, scope=scope, now=now, after=after, last=last,
                                default_version=default_version)
    rows = (await conn.execute(query.having(version.in_(sorted(versions))).limit(limit))).all()
    return [str(r[0]) for r in rows]


async def page_premises_over_device_limit(conn: AsyncConnection, *, party_id: int, kind: AgreementKind,
                                          scope: Scope | None, now: datetime, after: str, last: str,
                                          limit: int) -> list[str]:
    """Up to `limit` ESI IDs of the page (after, last] whose meter has more devices registered
    than it serves."""
    query, _version = _page_rows(party_id=party_id, kind=kind, scope=scope, now=now, after=after, last=last,
                                 default_version="1.1", within_limit=False)
    return [str(r[0]) for r in (await conn.execute(query.limit(limit))).all()]


async def device_counts(conn: AsyncConnection, esi_ids: list[str]) -> dict[str, tuple[bool, int, int]]:
    """ESI ID -> (enhanced meter, devices holding a slot, of which load-control devices)."""
    devices = sa.select(sa.func.count()).where(_HELD).scalar_subquery()
    controlled = sa.select(sa.func.count()).where(
        _HELD, sa.func.lower(han_devices.c.device_type).in_(sorted(LOAD_CONTROL_DEVICE_TYPES))).scalar_subquery()
    found: dict[str, tuple[bool, int, int]] = {}
    for i in range(0, len(esi_ids), 500):  # bound the IN list (SQLite's variable limit)
        rows = (await conn.execute(sa.select(premises.c.esi_id, premises.c.enhanced_meter, devices, controlled).where(
            premises.c.esi_id.in_(esi_ids[i:i + 500])))).all()
        found.update({str(e): (bool(enhanced), int(n), int(lc)) for e, enhanced, n, lc in rows})
    return found


async def se_versions(conn: AsyncConnection, esi_ids: list[str]) -> dict[str, str | None]:
    """ESI ID -> the premise's SE version (None when unknown) for a page's premises."""
    if not esi_ids:
        return {}
    return dict((await conn.execute(sa.select(premises.c.esi_id, premises.c.se_version).where(
        premises.c.esi_id.in_(esi_ids)))).all())
