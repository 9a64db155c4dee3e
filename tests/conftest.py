"""Guard rails shared by every test (STYLE.md): a log call whose %-arguments do not fit its
message fails the test that made it, instead of printing a traceback nobody reads."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest


class _FormatChecker(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
        except Exception as exc:  # any formatting failure is the bug we look for
            self.failures.append(f"{record.pathname}:{record.lineno}: {record.msg!r} % {record.args!r}: {exc}")


# Libraries that log every database operation or socket event at DEBUG: tens of thousands of records
# per test file, each formatted by pytest's capture handlers (a few percent of a test's CPU), and not
# our log calls. A test that searches every log line (secrets in the logs) sets them to DEBUG itself.
CHATTY_LIBRARIES = ("aiosqlite", "httpcore")


@pytest.fixture(autouse=True)
def _log_calls_must_format() -> Iterator[None]:
    checker = _FormatChecker()
    root = logging.getLogger()
    old_level = root.level
    chatty = {name: logging.getLogger(name) for name in CHATTY_LIBRARIES}
    old_chatty = {name: logger.level for name, logger in chatty.items()}
    root.addHandler(checker)
    root.setLevel(logging.DEBUG)
    for logger in chatty.values():
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(checker)
        root.setLevel(old_level)
        for name, logger in chatty.items():
            logger.setLevel(old_chatty[name])
    assert not checker.failures, "log calls with bad arguments:\n" + "\n".join(checker.failures)


# Tests that run several gateway processes and kill them (kill -9, lease take-over) or measure
# throughput across them: under pytest-xdist with `--dist loadgroup` (README "Tests") they all go to
# one worker, one after the other, so two of them never compete for the two cores
# and the database at once — their time bounds (leases, restart waits, rate-limit windows) were set
# for one such test at a time. The other worker meanwhile runs the rest.
SERIAL_MULTI_PROCESS = (
    "tests/e2e/test_crash.py",
    "tests/e2e/test_instances.py",
    "tests/e2e/test_idempotency_crash.py",
    "tests/e2e/test_outbox_takeover.py",
    "tests/e2e/test_report_any_instance.py",
    "tests/e2e/test_roles.py",
    "tests/gateway/test_shared_state_instances.py",
    "tests/pipeline/test_radio_single_owner.py",
    "tests/benchmarks/test_scaleout_benchmark_runs.py",
    "tests/e2e/test_graceful_stop.py",
    "tests/mqtt_api/test_mqtt_kill.py",
    "tests/adapters/test_cim_manual_ack.py",
    "tests/adapters/test_provisioning_instances.py",
    "tests/pipeline/test_fanout_claims.py",
)


# tryfirst: pytest-xdist's own hook (registered after this conftest, so called before it otherwise)
# reads the marks to put each group on one worker; they must be on the items by then.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A renamed file would silently leave the group: say so instead.
    missing = [path for path in SERIAL_MULTI_PROCESS if not (config.rootpath / path).is_file()]
    assert not missing, f"tests/conftest.py SERIAL_MULTI_PROCESS names files that do not exist: {missing}"
    for item in items:
        if item.nodeid.split("::", 1)[0] in SERIAL_MULTI_PROCESS:
            item.add_marker(pytest.mark.xdist_group("multi_process"))


def pytest_collection_finish(session: pytest.Session) -> None:
    # In a pytest-xdist worker under `--dist loadgroup`, xdist has by now appended "@<group>" to each
    # grouped test's id: that suffix is what sends the group to one worker. Some pytest/xdist pairs
    # (pytest 9.2 with xdist 3.8) silently do not; the kill tests would then run two at a time.
    if session.config.getoption("loadgroup", default=False):
        lost = [item.nodeid for item in session.items
                if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            raise pytest.UsageError(f"pytest-xdist did not group {len(lost)} tests (e.g. {lost[0]}): this pytest "
                                    "and pytest-xdist do not work together for --dist loadgroup (see pyproject.toml)")


# ---------------------------------------------------------------------------------- PostgreSQL

# Databases of this test session (of this pytest-xdist worker: each worker imports this module
# itself) share a unique prefix; each is dropped after its test.
PG_SESSION_PREFIX = f"hangw_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards (migration tests; a test
    that only needs the schema takes `migrated_pg_url`)."""
    # Imported here: the store (SQLAlchemy, alembic) is not what a codec test should wait for.
    from sandbox.testbed import throwaway_database

    async with throwaway_database(PG_SESSION_PREFIX) as url:
        yield url


@pytest.fixture(scope="session")
def pg_migrated_template() -> Iterator[str]:
    """A PostgreSQL database this test session migrated to head once: the template of
    `migrated_pg_url`'s (all the migrations took 2.5-3 s a test; a copy takes about 1 s)."""
    from sandbox.testbed import drop_database, migrate_template

    name = f"{PG_SESSION_PREFIX}_template"
    asyncio.run(migrate_template(name))
    try:
        yield name
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture
async def migrated_pg_url(pg_migrated_template: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database at head (a copy of the migrated template), dropped afterwards;
    open_store on it finds nothing to migrate."""
    from sandbox.testbed import throwaway_database

    async with throwaway_database(PG_SESSION_PREFIX, template=pg_migrated_template) as url:
        yield url
