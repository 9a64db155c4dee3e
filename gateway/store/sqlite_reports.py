"""Usage reports on a SQLite file: a report's text made by SQLite, in worker processes.

A chunk of premises is rendered by a process of a small pool (`render_csv`, `render_blocks`), on a
read-only connection of its own, straight into a file of the report's directory: the report's own
file or one appended to it after (CSV), or one the blocks are read back from (Green Button). Processes, not
threads: sqlite3 lets go of the GIL while SQLite works, yet two threads of one process rendering
at once were slower than one (2.88 M rows: one thread 2.5 s, two threads 3.6 s, two processes
1.4 s — SQLite's process-wide mutexes), and the rendered text crosses back as a file in the page
cache, not pickled (pickling the blocks cost the parent 2 s of CPU per 2.88 M rows).

The text is SQLite's, one printf a row and one group_concat per premise's channel (CSV) or per
premise, channel and local day (Green Button): a row crosses into Python per group, not per read
(measured, 2.88 M rows, one process: fetching every row as a tuple 3.9 s; every Green Button
block this way 2.5–3.6 s). The rows come by the primary key's index in time order; the subquery's
ORDER BY is what orders group_concat (SQLite 3.40 has no ORDER BY inside an aggregate; a subquery
with ORDER BY is not flattened into an aggregate query, and an aggregate without GROUP BY takes its
rows in their order). tests/gateway/test_usage_reports_store.py compares both with the Python
writers byte for byte.

This module runs in the worker processes too: it imports nothing of the gateway's beyond the
standard library (the parent packages' imports are paid once, when a worker starts).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

TIME_ZONE = "America/Chicago"  # as gateway/store/usage_reports.py
_ZONE = ZoneInfo(TIME_ZONE)
INTERVAL_S = 900
UNIXEPOCH = (3, 38, 0)  # the SQLite that has unixepoch(): an older one takes the Python writer
WORKERS = max(1, min(2, os.cpu_count() or 1))  # a chunk each; the producing worker writes meanwhile

StoredSpan = tuple[str, Any, Any]
"""(esi_id, start, end) with the times in the store's text form."""
StoredDays = tuple[str, Sequence[tuple[str, Any, Any]]]
"""(esi_id, [(local day YYYY-MM-DD, start, end)]): a premise's span cut at local midnights."""
BlockIndex = tuple[str, str, str, int, int | None]
"""(esi_id, channel, day, length of its IntervalReading elements in the file (-1: none), newest
stored epoch or None)."""

# -- in the worker processes ----------------------------------------------------------------------

_CSV = (
    "SELECT group_concat(line, ''), count(*) FROM (SELECT printf('%s,%s,%s,%s,Wh,%s,1,1\n', r.esi_id, "
    "coalesce(CASE WHEN r.length_s = 900 THEN g.times END, report_times(r.interval_start, r.length_s)), "
    "r.channel, CASE WHEN r.quality = 'missing' THEN '' ELSE r.value_wh END, r.quality) AS line "
    "FROM usage_reads r LEFT JOIN report_grid g ON g.at = r.interval_start "
    "WHERE r.esi_id = ? AND r.channel = ? AND r.interval_start >= ? AND r.interval_start < ? "
    "ORDER BY r.interval_start)")
# The IntervalReading elements of gateway/greenbutton/writer.py's _READING and _READING_ESTIMATED
# (a missing read has none), the newest stored time of the others, and the rows (missing too).
_XML = (
    "CASE quality WHEN 'missing' THEN NULL WHEN 'estimated' THEN printf('<IntervalReading><ReadingQuality>"
    "<quality>8</quality></ReadingQuality><timePeriod><duration>%d</duration><start>%d</start></timePeriod>"
    "<value>%d</value></IntervalReading>', length_s, unixepoch(interval_start), value_wh) ELSE printf("
    "'<IntervalReading><timePeriod><duration>%d</duration><start>%d</start></timePeriod><value>%d</value>"
    "</IntervalReading>', length_s, unixepoch(interval_start), value_wh) END")
_BLOCK = (
    "SELECT group_concat(x, ''), unixepoch(max(newest)), count(*) FROM (SELECT " + _XML + " AS x, "
    "CASE WHEN quality <> 'missing' THEN received_at END AS newest FROM usage_reads "
    "WHERE esi_id = ? AND channel = ? AND interval_start >= ? AND interval_start < ? ORDER BY interval_start)")
_NEXT_CHANNEL = "SELECT min(channel) FROM usage_reads WHERE esi_id = ? AND channel > ?"


def render_csv(path: str, spans: Sequence[StoredSpan], out_path: str) -> int:
    """The spans' CSV lines (no header) appended to the file `out_path`; rows written. The interval's
    three times come from a temporary table of the period's 15-minute starts (made once, by
    `_times`), a read off that grid by `_times` called from SQL."""
    conn = _reader(path)
    rows = 0
    try:
        conn.create_function("report_times", 2, _times, deterministic=True)
        # DATETIME, as usage_reads.interval_start: the same affinity, or the join scans the table.
        conn.execute("CREATE TEMP TABLE report_grid (at DATETIME PRIMARY KEY, times TEXT NOT NULL) WITHOUT ROWID")
        conn.executemany("INSERT INTO report_grid VALUES (?, ?)", _grid(spans))
        with open(out_path, "ab") as out:
            for esi_id, start, end in spans:
                if end <= start:
                    continue
                for channel in _channels(conn, esi_id):
                    text, count = conn.execute(_CSV, (esi_id, channel, start, end)).fetchone()
                    if count:
                        out.write(text)
                        rows += count
    finally:
        conn.close()
    return rows


def render_blocks(path: str, premises: Sequence[StoredDays], out_path: str) -> tuple[list[BlockIndex], int]:
    """The premises' Green Button blocks, in (esi_id, channel, day) order: their IntervalReading
    elements one after another into a new file `out_path`, and the index of them; the rows they
    hold (missing ones too)."""
    conn = _reader(path)
    index: list[BlockIndex] = []
    rows = 0
    try:
        with open(out_path, "xb") as out:
            for esi_id, days in premises:
                if not days:
                    continue
                for channel in _channels(conn, esi_id):
                    for day, low, high in days:
                        readings, newest, count = conn.execute(_BLOCK, (esi_id, channel, low, high)).fetchone()
                        if count:
                            if readings is not None:
                                out.write(readings)
                            index.append((esi_id, channel, day, -1 if readings is None else len(readings), newest))
                            rows += count
    finally:
        conn.close()
    return index, rows


def _render_process_setup() -> None:
    """In a render process, once, as it starts:
    - Ctrl-C in a terminal reaches the whole process group; the producing worker decides when its
      render processes stop (no traceback from each of them);
    - a producing worker killed (kill -9) leaves no render process behind: the pool's processes
      would otherwise wait for work forever, an orphan each (seen), so a thread waits for the
      parent's end (multiprocessing's parent sentinel) and ends this process with it, mid-render
      or idle (a half-written chunk file is removed by the report's next attempt)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        sentinel = parent.sentinel
        threading.Thread(target=_exit_with_parent, args=(sentinel,), name="parent-watch", daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _reader(path: str) -> sqlite3.Connection:
    """A read-only connection whose text comes back as UTF-8 bytes: what is written to the file,
    without a decode and an encode of every group."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = bytes
    return conn


def _channels(conn: sqlite3.Connection, esi_id: str) -> list[str]:
    """The premise's channels, ascending, by the index (a DISTINCT would read all its rows)."""
    channels: list[str] = []
    while (row := conn.execute(_NEXT_CHANNEL, (esi_id, channels[-1] if channels else "")).fetchone())[0]:
        channels.append(row[0].decode())
    return channels


def _grid(spans: Sequence[StoredSpan]) -> list[tuple[str, str]]:
    """The 15-minute starts from the spans' earliest start to their latest end, as stored, each with
    its three text forms."""
    if not spans:
        return []
    at, stop = (datetime.fromisoformat(min(s for _e, s, _t in spans)),
                datetime.fromisoformat(max(e for _e, _s, e in spans)))
    grid = []
    while at < stop:
        text = f"{at:%Y-%m-%d %H:%M:%S.%f}"
        grid.append((text, _times(text, INTERVAL_S)))
        at += timedelta(seconds=INTERVAL_S)
    return grid


def _times(stored: str | bytes, length_s: int) -> str:
    """start_local,end_local,start_utc of an interval stored as naive UTC text."""
    start = datetime.fromisoformat(stored.decode() if isinstance(stored, bytes) else stored).replace(tzinfo=UTC)
    end = start + timedelta(seconds=length_s)
    return (f"{start.astimezone(_ZONE).isoformat()},{end.astimezone(_ZONE).isoformat()},"
            f"{start.isoformat()}")


# -- in the producing worker ------------------------------------------------------------------------

_T = TypeVar("_T")


class _Pool:
    """The process's render pool: started by the first render of a session, stopped when the last
    session ends (an instance that is not producing a report holds no idle processes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executor: concurrent.futures.ProcessPoolExecutor | None = None
        self.sessions = 0

    def get(self) -> concurrent.futures.ProcessPoolExecutor:
        with self.lock:
            if self.executor is None:
                # spawn: the producing process has threads (aiosqlite's, asyncio's), which fork copies badly.
                self.executor = concurrent.futures.ProcessPoolExecutor(
                    WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_render_process_setup)
            return self.executor

    def discard(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        """A broken executor (a process died): the next render starts another."""
        with self.lock:
            if self.executor is executor:
                self.executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self.lock:
            executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_POOL = _Pool()


def supported() -> bool:
    """Whether this SQLite renders reports (unixepoch()); else the Python writers do."""
    return sqlite3.sqlite_version_info >= UNIXEPOCH


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[None]:
    """Held while a report is produced: the render processes stop when the last session ends."""
    with _POOL.lock:
        _POOL.sessions += 1
    try:
        yield
    finally:
        with _POOL.lock:
            _POOL.sessions -= 1
            last = _POOL.sessions == 0
        if last:
            await asyncio.to_thread(_POOL.shutdown)


def shutdown() -> None:
    """Stop the render processes now (the next render starts them again)."""
    _POOL.shutdown()


async def run(fn: Callable[..., _T], *args: Any, out_path: str) -> _T:
    """`fn(*args, out_path)` in a worker process. A caller cancelled meanwhile waits for a render
    already started to end (one chunk: seconds at most), so that no file is left behind; then the
    file is removed. A pool whose process died (killed) is replaced for the next call; this one
    raises BrokenProcessPool."""
    executor = _POOL.get()
    try:
        future = executor.submit(fn, *args, out_path)
    except BrokenProcessPool:
        _POOL.discard(executor)
        raise
    waiter = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waiter)
    except BrokenProcessPool:
        _POOL.discard(executor)
        raise
    except asyncio.CancelledError:
        future.cancel()  # not started: it never will be
        future.add_done_callback(lambda _f: _remove(out_path))  # should this wait be cut short too
        with contextlib.suppress(BaseException):
            await waiter
        _remove(out_path)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
