"""The store: the gateway's state, async, for SQLite and PostgreSQL, one module per aggregate.

`Store` is a thin facade: it owns the one engine (a UnitOfWorkEngine, so every call made inside an
API request with an Idempotency-Key joins that request's transaction) and mixes in the aggregates'
methods, each kept with its tables in its own module:

- gateway/store/parties.py: parties, technicians, credentials
- gateway/store/premises.py: premises and HAN devices
- gateway/store/agreements.py: agreements and the premises they cover; the consent read of a HAN
  request's targets (`consent_at_premises`)
- gateway/store/audit.py: the audit log
- gateway/store/idempotency.py: stored answers to idempotent requests
- gateway/store/mail_queue.py: the mail queue
- gateway/store/han_requests.py: HAN requests, their load-control event records (`lce_events`) and
  cancellations; the API's reads of a request and its deliveries (module functions)
- gateway/store/deliveries.py: the HAN delivery queue: deliveries, their transitions and device
  states, due rows, retries, references, withdrawals, delivery reports (module functions)
- gateway/store/device_writes.py: device writes waiting for their device's answer
- gateway/store/frame_log.py: the frame log; gateway/store/se_ids.py: the SE id counter
- gateway/store/fanout.py: a fan-out page's premises and delivery rows (one INSERT … SELECT)
- gateway/store/usage.py: usage reads (interval data): bulk upsert, keyset reads, stored starts
- gateway/store/webhooks.py: webhook targets and their event queue (module functions)
- gateway/store/provisioning.py, route_state.py: HAN provisioning, the radio route's state
- gateway/store/ownership.py: who owns a row (the API's authorization policy asks)
- gateway/store/operations_view.py: the operator's page's reads (premises, queues and failures per
  TDSP, provisioning in progress)
- gateway/store/bulk.py: set-based statement helpers the modules share
- gateway/store/errors.py: the store's errors (`ConstraintViolation`), so that no caller catches the
  database library's
- gateway/store/unit_of_work.py: units of work (an API request's one transaction)

Module functions that write in their caller's transaction take its connection: the pipeline opens
one with `Store.transaction()` and passes it along (it never builds SQL itself). An import contract
(pyproject.toml) keeps `sqlalchemy` and the schema inside gateway/store.

A facade rather than one object per aggregate: a hundred call sites say `store.create_party(...)`,
and they all must share the one engine. The SQLite back-end (aiosqlite) runs sqlite3 in a worker
thread and PostgreSQL (asyncpg) is natively async, so no call here blocks the event loop.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.store import migrate, sqlite_driver
from gateway.store.agreements import AgreementsStore
from gateway.store.audit import AuditStore
from gateway.store.idempotency import IdempotencyStore
from gateway.store.mail_queue import MailQueue, TextSealer
from gateway.store.meter_reads import MeterReadStore
from gateway.store.parties import PartiesStore
from gateway.store.premises import PremisesStore
from gateway.store.sqlite_writes import serialize_writes
from gateway.store.unit_of_work import Connection, unit_engine
from gateway.store.usage import UsageStore


class Store(PartiesStore, PremisesStore, AgreementsStore, AuditStore, IdempotencyStore, MailQueue, UsageStore,
            MeterReadStore):
    """All persistent state. Create with `open_store(url)`; close with `await store.close()`."""

    # Seals webhook signing secrets with the operator's key (they must be read back to sign).
    secret_sealer: TextSealer | None = None

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = serialize_writes(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self, revision: str = "head") -> None:
        await migrate.upgrade(self.engine, revision)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """One transaction shared by several store calls (they take its connection): they commit
        together or not at all. Inside a unit of work it is the unit's transaction; on SQLite it
        waits for the one writer."""
        return self.engine.begin()

    def unit_of_work(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A unit of work (gateway/store/unit_of_work.py): the store calls this task makes in the
        block join one transaction, and actions registered with `after_commit` (a mail stored in
        it) run once it commits."""
        return unit_engine(self.engine).unit_of_work()

    @property
    def single_writer(self) -> bool:
        """Whether the database takes one write transaction at a time (SQLite)."""
        return self.engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    parsed = sa.engine.make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:"):
        # The default pool (5, overflow 10) opened and closed a connection for every request
        # beyond 5 concurrent ones: on SQLite a thread with its pragmas, on PostgreSQL a backend
        # process. Connections are opened on demand, up to 20 kept.
        options = {"pool_size": 20, "max_overflow": 20}
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")  # one thread trip per statement
    if parsed.drivername == "postgresql+asyncpg":
        # No JIT: the gateway's statements are short and index-driven, but a fan-out page's
        # per-row subqueries push its estimated cost over jit_above_cost, and compiling took
        # ~80 ms of a page that runs in less (measured, PostgreSQL 15, 5,000 premises a page).
        options["connect_args"] = {"server_settings": {"jit": "off"}}
    engine = create_async_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return serialize_writes(engine)  # units of work; on SQLite one writer at a time


async def open_store(url: str, *, migrate_to: str | None = "head") -> Store:
    """Open the database at `url` (sqlite+aiosqlite:///… or postgresql+asyncpg://…) and migrate."""
    store = Store(make_engine(url))
    if migrate_to is not None:
        await store.migrate(migrate_to)
    return store
