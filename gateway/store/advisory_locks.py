"""PostgreSQL transaction-level advisory locks that order work across gateway instances.

Each use has its own namespace: the two-key form `pg_advisory_xact_lock(namespace, key)` (a lock
space apart from the one-bigint form), with the namespaces listed here so that no two uses share
one. The locks are released by the transaction's commit or rollback, so a killed instance never
leaves one held. SQLite has one writer at a time and one gateway process per file: there the
functions do nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Session-level locks, the one-bigint form (a lock space apart from the two-key form below), held
# on a connection of their own for as long as one instance does the work: the dispatcher's sweeps
# and usage ingestion passes (gateway/store/exclusive.py) and the owner of a route only one
# instance drives (a local radio: gateway/store/owner_lock.py, a 64-bit hash of "hangw:<name>", so
# it never equals these constants but by a 1-in-2^64 chance).
DISPATCHER_SWEEPS = 0x68616E_0001  # "han" + 1
USAGE_INGESTION = 0x68616E_0002  # a usage ingestion pass (gateway/usage.py)

IDEMPOTENCY_KEY = 0x1D3A  # one Idempotency-Key of one credential (gateway/api/idempotency.py)
PREMISE_ARBITRATION = 0x1C3E  # a stripe of premises' load-control arbitration (pipeline/arbitration.py)

# Premises share PREMISE_STRIPES locks: a fan-out page of thousands of premises takes at most this
# many (PostgreSQL's lock table holds max_locks_per_transaction × max_connections entries, 6,400 by
# default); two premises on one stripe only wait for each other, which is never wrong.
PREMISE_STRIPES = 256


def _key(text: str, modulo: int = 2**31) -> int:
    # crc32 (stable across processes, unlike hash()) folded into PostgreSQL's int4.
    return zlib.crc32(text.encode()) % modulo


async def lock(conn: AsyncConnection, namespace: int, text: str) -> None:
    """Wait until no other transaction holds `text`'s lock in `namespace`, and hold it to the end
    of `conn`'s transaction."""
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                       {"ns": namespace, "key": _key(text)})


async def lock_premises(conn: AsyncConnection, esi_ids: Iterable[str]) -> None:
    """Hold the arbitration locks of `esi_ids`' stripes to the end of `conn`'s transaction, taken
    in ascending order (two transactions never wait for each other in a cycle)."""
    if conn.dialect.name != "postgresql":
        return
    stripes = sorted({_key(e, PREMISE_STRIPES) for e in esi_ids})
    if not stripes:
        return
    # unnest's rows come in array order, and each row's lock is taken before the next is read.
    await conn.execute(sa.text(
        "SELECT count(pg_advisory_xact_lock(:ns, k)) FROM unnest(CAST(:keys AS int[])) AS k"),
        {"ns": PREMISE_ARBITRATION, "keys": stripes})


PARTY_EVENTS = 0x1E7E  # one party's event log (gateway/store/events.py): its events commit in id order


async def lock_keys(conn: AsyncConnection, namespace: int, keys: Iterable[int]) -> None:
    """Hold the locks of integer `keys` (< 2**31, e.g. party ids) in `namespace` to the end of
    `conn`'s transaction, taken in ascending order (two transactions that each take theirs in one
    call never wait for each other in a cycle)."""
    if conn.dialect.name != "postgresql":
        return
    ordered = sorted(set(keys))
    if not ordered:
        return
    await conn.execute(sa.text(
        "SELECT count(pg_advisory_xact_lock(:ns, k)) FROM unnest(CAST(:keys AS int[])) AS k"),
        {"ns": namespace, "keys": ordered})
