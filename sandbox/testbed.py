"""What the tests and the benchmarks need to run gateways against real peers, in one place: a
throwaway PostgreSQL database (empty, or a copy of one migrated to head) and a wait for a started
process's HTTP port.

Each used to be written again in every multi-instance test and benchmark. A copy of a migrated
template (`CREATE DATABASE … TEMPLATE`) takes about 1 s where running every migration takes 2.5-3 s,
so whoever needs several databases at head migrates one template once and copies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from gateway.store.store import open_store

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
"""The PostgreSQL server of the tests and benchmarks (scripts/services.sh starts it; trust auth)."""


def _with(server_url: str, scheme: str, database: str) -> str:
    # Plain URL surgery (SQL stays in gateway.store: no SQLAlchemy here); user, password, host and
    # query are kept as given.
    parts = urlsplit(server_url)
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _admin_dsn(server_url: str) -> str:
    """asyncpg's DSN for the server's `postgres` database, where databases are created and dropped."""
    return _with(server_url, "postgresql", "postgres")


def database_url(server_url: str, name: str) -> str:
    """The store URL (postgresql+asyncpg) of database `name` on `server_url`'s server."""
    return _with(server_url, "postgresql+asyncpg", name)


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str, server_url: str = DEFAULT_SERVER, *, template: str | None = None) -> str:
    """Create database `name` (a copy of `template` if given, which must have no connections); its URL."""
    await _admin(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return database_url(server_url, name)


async def drop_database(name: str, server_url: str = DEFAULT_SERVER) -> None:
    """Drop database `name`, ending its sessions (a killed gateway's may linger); no error if absent."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def throwaway_database(prefix: str, server_url: str = DEFAULT_SERVER, *,
                             template: str | None = None) -> AsyncIterator[str]:
    """A new database named `prefix_<random>` (a copy of `template`, else empty), dropped afterwards:
    its store URL. The random part keeps parallel runs (pytest-xdist workers, two benchmarks) apart."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = await create_database(name, server_url, template=template)
    try:
        yield url
    finally:
        await drop_database(name, server_url)


async def migrate_template(name: str, server_url: str = DEFAULT_SERVER) -> str:
    """Create database `name` and migrate it to head, closed again so that it can be copied
    (`throwaway_database(…, template=name)`); its URL."""
    url = await create_database(name, server_url)
    store = await open_store(url)
    await store.close()  # a template must have no connections when it is copied
    return url


async def wait_http(url: str, timeout: float = 60, *, proc: subprocess.Popen[Any] | None = None,
                    log: Path | None = None) -> None:
    """Return once `url` answers 200. AssertionError after `timeout` seconds, or at once when
    `proc` (the server being waited for) has exited, with the end of `log` in the message."""
    deadline = time.monotonic() + timeout

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""

    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{url}: the server exited with {proc.returncode} before answering:\n{tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            # Short: a gateway answers within milliseconds of binding, and the tests wait for many.
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s:\n{tail()}")


def wait_http_sync(url: str, timeout: float = 60, *, proc: subprocess.Popen[Any] | None = None,
                   log: Path | None = None) -> None:
    """`wait_http` for callers without an event loop."""
    asyncio.run(wait_http(url, timeout, proc=proc, log=log))
