"""The SQLite render processes (gateway/store/sqlite_reports.py) outlive nothing: a producing
process killed with kill -9 mid-report takes its render processes with it, instead of leaving
them waiting for work forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# A producing process: a report session open, its render processes started and busy, then
# waiting; it prints its pid and its render processes' pids.
PRODUCER = textwrap.dedent("""
    import asyncio, os, sys, time
    from pathlib import Path
    from gateway.store import sqlite_reports

    def busy(seconds, out_path):
        Path(out_path).write_bytes(b"x")
        time.sleep(seconds)
        return os.getpid()

    async def main():
        async with sqlite_reports.session():
            await sqlite_reports.run(busy, 0.1, out_path=sys.argv[1] + "/a")
            slow = asyncio.ensure_future(sqlite_reports.run(busy, 60, out_path=sys.argv[1] + "/b"))
            await asyncio.sleep(1)
            print(os.getpid(), flush=True)
            await slow

    if __name__ == "__main__":
        asyncio.run(main())
""")


def _render_processes(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
            except FileNotFoundError:
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, reaped or not, is init's business).
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_producer_takes_its_render_processes_with_it(tmp_path: Path) -> None:
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    producer = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                                cwd=Path(__file__).parents[2])
    try:
        assert producer.stdout is not None
        pid = int(producer.stdout.readline())
        renderers = _render_processes(pid)
        assert renderers, "no render process started"
        os.kill(pid, signal.SIGKILL)  # one of them is mid-render (60 s), the other idle
        producer.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(r) for r in renderers):
            assert time.monotonic() < deadline, f"render processes {renderers} outlived their producer"
            time.sleep(0.1)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        if producer.stdout is not None:
            producer.stdout.close()
