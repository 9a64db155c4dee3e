"""Green Button writer alone: 15-minute intervals written per second by the streaming ESPI writer
(`gateway.greenbutton.espi_feed`), beside the same rows written as CSV (`csv.writer`, one line a
row: esi_id, channel, start, length, Wh, quality) in the same run — both from the same in-memory
rows through an async iterator, both into bytes chunks that are counted and dropped (no disk, no
store: the writer's own cost, which a bulk export of 10,000 premises × a month, 28.8 M intervals,
pays on top of reading the store).

    python -m benchmarks.espi [--premises 100] [--days 30] [--solar-share 0.2]

Last line: `espi: intervals_per_s=X ratio_vs_csv=Y` (Y: ESPI intervals/s over CSV intervals/s;
1.00 = as fast as CSV). The line before it projects the 28.8 M-interval export.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from gateway.greenbutton import FeedLinks, espi_feed
from gateway.store.usage import StoredRead

BULK_INTERVALS = 28_800_000  # 10,000 premises × 30 days × 96
START = int(datetime(2026, 10, 1, 5, tzinfo=UTC).timestamp())  # local midnight, America/Chicago


def make_rows(premises: int, days: int, solar_share: float) -> list[StoredRead]:
    received = datetime(2026, 11, 2, tzinfo=UTC)
    out = []
    for p in range(premises):
        esi = f"10443720{p:09d}"
        channels = ["consumption"] + (["generation"] if p < premises * solar_share else [])
        for channel in channels:
            for i in range(96 * days):
                t = START + 900 * i
                out.append(StoredRead(esi, channel, datetime.fromtimestamp(t, UTC), 900, 150 + (i * 7919 + p) % 900,
                                      "estimated" if (i + p) % 500 == 0 else "actual", "bench", received))
    return out


async def _iterate(rows: Sequence[StoredRead]) -> AsyncIterator[StoredRead]:
    for row in rows:
        yield row


async def write_espi(rows: Sequence[StoredRead]) -> int:
    base = "https://gw.example/espi/1_1/resource"
    links = FeedLinks(base, f"{base}/Subscription/1/UsagePoint", f"{base}/Batch/Subscription/1", "benchmark")
    size = 0
    async for chunk in espi_feed(_iterate(rows), links=links, updated=datetime.now(UTC)):
        size += len(chunk)
    return size


async def write_csv(rows: Sequence[StoredRead], chunk_rows: int = 2000) -> int:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("esi_id", "channel", "start_utc", "length_s", "value_wh", "quality"))
    size, count = 0, 0
    async for r in _iterate(rows):
        writer.writerow((r.esi_id, r.channel, int(r.interval_start.timestamp()), r.length_s, r.value_wh, r.quality))
        count += 1
        if count % chunk_rows == 0:
            size += len(out.getvalue().encode())
            out.seek(0)
            out.truncate()
    return size + len(out.getvalue().encode())


async def main(premises: int, days: int, solar_share: float) -> None:
    rows = make_rows(premises, days, solar_share)
    n = len(rows)
    t0 = time.perf_counter()
    csv_bytes = await write_csv(rows)
    t1 = time.perf_counter()
    espi_bytes = await write_espi(rows)
    t2 = time.perf_counter()
    csv_rate, espi_rate = n / (t1 - t0), n / (t2 - t1)
    print(f"intervals={n} premises={premises} days={days}")
    print(f"csv:  {t1 - t0:.2f} s  {csv_rate:,.0f} intervals/s  {csv_bytes / n:.0f} bytes/interval")
    print(f"espi: {t2 - t1:.2f} s  {espi_rate:,.0f} intervals/s  {espi_bytes / n:.0f} bytes/interval")
    print(f"projected: {BULK_INTERVALS:,} intervals (10,000 premises x a month) in {BULK_INTERVALS / espi_rate:.0f} s "
          f"of ESPI writing on one core (budget 60 s)")
    print(f"espi: intervals_per_s={espi_rate:.0f} ratio_vs_csv={espi_rate / csv_rate:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--premises", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--solar-share", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.premises, args.days, args.solar_share))
