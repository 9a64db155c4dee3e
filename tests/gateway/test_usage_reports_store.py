"""The usage reports' store on SQLite and on the real PostgreSQL: the CSV fast paths (COPY, the
sqlite3 thread) write exactly the generic writer's bytes, odd reads included; two workers claim a
report once; a worker whose lease ran out is fenced off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.greenbutton import FeedLinks, espi_feed
from gateway.greenbutton.writer import Block, espi_feed_blocks
from gateway.store import usage_reports as reports
from gateway.store.store import Store, open_store
from gateway.store.usage import StoredRead
from gateway.store.usage_reports import PremiseSpan, ReportPremise
from gateway.usage_reports import csv_writer

T0 = datetime(2026, 3, 7, 6, tzinfo=UTC)  # local midnight, the day before DST starts in Chicago
ESIS = ["10443720000000001", "10443720000000002", "10443720000000003"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


async def _seed(store: Store) -> None:
    now = datetime.now(UTC)
    rows = []
    for n, esi in enumerate(ESIS):
        for i in range(2 * 96):  # two days, across the change to daylight time
            quality = "missing" if i % 50 == 7 else "estimated" if i % 31 == 3 else "actual"
            rows.append(StoredRead(esi, "consumption", T0 + timedelta(minutes=15 * i), 900, 10 * n + i, quality,
                                   "sim", now))
        rows.append(StoredRead(esi, "generation", T0 + timedelta(minutes=30), 900, 5, "actual", "sim", now))
    # Off the 15-minute grid, and of another length: the fast paths' fall-backs.
    rows.append(StoredRead(ESIS[1], "generation", T0 + timedelta(minutes=37), 1800, 4, "actual", "sim", now))
    await store.upsert_usage_reads(rows)


async def _generic(store: Store, spans: list[PremiseSpan]) -> bytes:
    async def rows() -> AsyncIterator[StoredRead]:
        async for page in reports.stream_reads(store.engine, spans):
            for row in page:
                yield row

    return b"".join([chunk async for chunk in csv_writer(rows())])


async def test_the_fast_paths_write_the_generic_writers_bytes(store_url: str, tmp_path: Path) -> None:
    store = await open_store(store_url)
    try:
        await _seed(store)
        spans = [PremiseSpan(ESIS[0], T0, T0 + timedelta(days=2)), PremiseSpan(ESIS[1], T0, T0 + timedelta(days=1)),
                 PremiseSpan("10443720000000009", T0, T0 + timedelta(days=1)),  # nothing stored
                 PremiseSpan(ESIS[2], T0 + timedelta(hours=5), T0 + timedelta(hours=6))]
        expected = await _generic(store, spans)
        fast = reports.csv_fast_path(store.engine)
        assert fast is not None
        out = tmp_path / "chunk.part"
        rows = await fast.copy(spans, out)
        assert out.read_bytes() == expected
        assert rows == expected.count(b"\n") == 2 * 96 + 1 + 96 + 1 + 1 + 4
        lines = expected.decode().splitlines()
        assert lines[0] == f"{ESIS[0]},2026-03-07T00:00:00-06:00,2026-03-07T00:15:00-06:00,2026-03-07T06:00:00+00:00," \
                           "consumption,0,Wh,actual,1,1"
        assert f"{ESIS[0]},2026-03-08T03:00:00-05:00," in expected.decode()  # daylight time, its offset
        assert ",consumption,,Wh,missing,1,1" in expected.decode()  # a missing read has no value
        assert f"{ESIS[1]},2026-03-07T00:37:00-06:00,2026-03-07T01:07:00-06:00," in expected.decode()
    finally:
        await store.close()


async def test_two_workers_claim_a_report_once_and_a_late_one_is_fenced_off(migrated_pg_url: str) -> None:
    first, second = await open_store(migrated_pg_url), await open_store(migrated_pg_url)
    try:
        now = datetime.now(UTC)
        party = await first.create_party(name="Watts", duns="123456789", contact_email="a@watts.test", now=now)
        report = await reports.create_report(first.engine, party_id=party.id, fmt="csv", interval="15min", start=T0,
                                             end=T0 + timedelta(days=1), premises=[ReportPremise(ESIS[0], None)],
                                             now=now)
        lease = timedelta(seconds=30)
        a, b = await asyncio.gather(reports.claim_report(first.engine, now, lease),
                                    reports.claim_report(second.engine, now, lease))
        claimed = [c for c in (a, b) if c is not None]
        assert len(claimed) == 1 and claimed[0].id == report.id and claimed[0].state == reports.RUNNING
        assert await reports.claim_report(second.engine, now + timedelta(seconds=29), lease) is None
        assert await reports.checkpoint(first.engine, claimed[0], premises_done=1, rows_written=96,
                                        lease_until=now + timedelta(seconds=20))

        # The holder stops extending (it died): once the lease is over another worker takes the
        # report over from the start; the old holder's checkpoint and finish are refused.
        later = now + timedelta(seconds=21)
        taken = await reports.claim_report(second.engine, later, lease)
        assert taken is not None and taken.attempts == claimed[0].attempts + 1 and taken.premises_done == 0
        assert not await reports.checkpoint(first.engine, claimed[0], premises_done=1, rows_written=96,
                                            lease_until=later + lease)
        assert not await reports.finish_report(first.engine, claimed[0], premises_done=1, rows_written=96,
                                               file_name="x.csv", file_bytes=1, now=later, expires_at=later)
        assert await reports.finish_report(second.engine, taken, premises_done=1, rows_written=96,
                                           file_name=f"report-{report.id}.csv", file_bytes=10, now=later,
                                           expires_at=later + timedelta(days=7))
        done = await reports.get_report(first.engine, report.id)
        assert done is not None and done.state == reports.DONE and done.file_bytes == 10
        assert await reports.claim_report(first.engine, later + timedelta(hours=1), lease) is None
        assert await reports.expired_reports(first.engine, later + timedelta(days=7)) == [done]

        # A report whose workers all die is given up after MAX_ATTEMPTS claims.
        doomed = await reports.create_report(first.engine, party_id=party.id, fmt="csv", interval="15min", start=T0,
                                             end=T0 + timedelta(days=1), premises=[ReportPremise(ESIS[0], None)],
                                             now=now)
        at = now
        for attempt in range(1, reports.MAX_ATTEMPTS + 1):
            claim = await reports.claim_report(first.engine, at, lease)
            assert claim is not None and claim.id == doomed.id and claim.attempts == attempt
            at += lease
        assert await reports.claim_report(first.engine, at, lease) is None
        failed = await reports.get_report(first.engine, doomed.id)
        assert failed is not None and failed.state == reports.FAILED and "given up" in (failed.error or "")
    finally:
        await first.close()
        await second.close()


async def test_the_stores_green_button_blocks_make_the_writers_document(store_url: str, tmp_path: Path) -> None:
    """PostgreSQL and SQLite render a report's IntervalReading elements themselves (the Green
    Button report's fast path): the document is the Python writer's, byte for byte — estimated and
    missing reads, the day daylight time starts, a read off the grid, a premise without reads."""
    store = await open_store(store_url)
    try:
        await _seed(store)
        spans = [PremiseSpan(ESIS[0], T0, T0 + timedelta(days=2)), PremiseSpan(ESIS[1], T0, T0 + timedelta(days=1)),
                 PremiseSpan(ESIS[2], T0 + timedelta(hours=5), T0 + timedelta(hours=6)),
                 PremiseSpan("10443720000000009", T0, T0 + timedelta(days=1))]
        spans.sort(key=lambda s: s.esi_id)
        links = FeedLinks("https://gw.test/espi/1_1/resource", "https://gw.test/espi/1_1/resource/Batch/Bulk/1/UsagePoint",
                          "https://gw.test/v1/usage-reports/1/file", "Usage report 1")
        updated = datetime(2026, 3, 10, tzinfo=UTC)
        esi_ids = [s.esi_id for s in spans]

        async def rows() -> AsyncIterator[StoredRead]:
            async for page in reports.stream_reads(store.engine, spans):
                for row in page:
                    yield row

        expected = b"".join([c async for c in espi_feed(rows(), links=links, updated=updated, usage_points=esi_ids)])
        render = reports.espi_fast_path(store.engine)
        assert render is not None
        # In esi_id order whatever the spans' order; the scratch file is the renderer's to remove.
        rendered, count = await render.render(list(reversed(spans)), tmp_path / "blocks.part")
        assert not (tmp_path / "blocks.part").exists()

        async def blocks() -> AsyncIterator[Block]:
            for esi_id, channel, day, readings, newest in rendered:
                yield Block(esi_id, channel, date.fromisoformat(day), readings,
                            None if newest is None else datetime.fromtimestamp(newest, UTC))

        got = b"".join([c async for c in espi_feed_blocks(blocks(), links=links, updated=updated,
                                                          usage_points=esi_ids)])
        assert got == expected
        assert count == 2 * 96 + 1 + 96 + 1 + 1 + 4  # every row, missing ones too
        # Premise 1: 48 h from local midnight span three local days (the second has 23 h) and a
        # generation day; premise 2: a day of each channel; premise 3: one day.
        assert expected.count(b"<IntervalBlock ") == 3 + 1 + 2 + 1
        assert b"<ReadingQuality><quality>8</quality></ReadingQuality>" in expected
    finally:
        await store.close()
