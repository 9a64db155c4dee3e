"""A real gateway on a loopback port per test, helpers. The PostgreSQL fixtures (`pg_url`,
`migrated_pg_url`) are tests/conftest.py's, for every test directory; they are imported here
for the modules that import them from this one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewayConfig
from gateway.store.store import Store, open_store
from sandbox import local_gateway
from sandbox.local_gateway import (  # noqa: F401 (re-exported: the tests import them from here)
    LOOPBACK_NETWORKS,
    PREMISES_CSV,
    Gateway,
    gateway_config,
    install_code,
    start_server,
    stop_server,
)
from tests.conftest import PG_SESSION_PREFIX, pg_url  # noqa: F401 (re-exported)

# ESI IDs of the test premises, one per TDSP (DOMAIN.md prefixes and lengths).
ONCOR = "10443720000000001"
ONCOR_2 = "10443720000000002"
ONCOR_EAST = "10176990000000003"
CENTERPOINT = "1008901000000000000004"
AEP_CENTRAL = "10032780000000005"
AEP_NORTH = "10204040000000006"
TNMP = "10400510000000007"
LARGE = "10443720000000008"



@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each back-end (migration tests)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


# A test gateway's new SQLite database starts as a copy of one this process migrated once: all the
# migrations (a transaction and a file sync each) ran for every test, about 0.2 s of CPU and a second of
# disk waits on a busy machine. The store still opens it through open_store (at head: nothing to do).
# The migrations' own tests (test_store_migrations.py, test_sqlite_upgrade.py, test_migration_*.py)
# open their databases themselves, from nothing.
_MIGRATED = tempfile.TemporaryDirectory(prefix="hangw-migrated-")


async def open_test_store(config: GatewayConfig) -> Store:
    """open_store on the config's database; a SQLite file that does not exist yet starts migrated."""
    target = config.data_dir / "hangw.db"
    if not config.storage.url and not target.exists():
        template = Path(_MIGRATED.name) / "hangw.db"
        if not template.exists():
            # Migrated under a name of its own, then renamed: two gateways started at once both
            # find a whole file.
            building = template.with_name(f"building-{uuid.uuid4().hex}.db")
            store = await open_store(f"sqlite+aiosqlite:///{building}")
            await store.close()  # the last connection closed: the WAL is folded into the file
            assert not building.with_name(building.name + "-wal").exists()
            os.replace(building, template)
        shutil.copyfile(template, target)
    return await open_store(config.storage_url)


@contextlib.asynccontextmanager
async def running_gateway(data_dir: Path, storage_url: str | None = None, *, reuse: bool = False,
                          **sections: Any) -> AsyncIterator[Gateway]:
    """sandbox.local_gateway's gateway, its SQLite database started from the migrated copy."""
    async with local_gateway.running_gateway(data_dir, storage_url, reuse=reuse, opener=open_test_store,
                                             **sections) as gw:
        yield gw


@pytest.fixture
async def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    marker = request.node.get_closest_marker("gateway_config")
    async with running_gateway(tmp_path / "data", **(marker.kwargs if marker else {})) as gw:
        yield gw


@pytest.fixture
async def gateway_pg(tmp_path: Path, migrated_pg_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    """The same gateway, its store on a fresh PostgreSQL database (at head)."""
    marker = request.node.get_closest_marker("gateway_config")
    async with running_gateway(tmp_path / "data", migrated_pg_url, **(marker.kwargs if marker else {})) as gw:
        yield gw


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**sections): config for the gateway fixture")
