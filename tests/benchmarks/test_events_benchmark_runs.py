"""The event-log benchmark keeps working, tiny (its figures are read by people, not asserted here;
the event and outbox row counts it checks itself: none without a channel, one each per transition
with a webhook)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_events_benchmark_prints_its_last_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.events", "--premises", "100"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "no event channel:" in run.stdout and ", 0 event rows" in run.stdout, run.stdout
    assert "200 event rows, 200 outbox rows" in run.stdout, run.stdout
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"events ratio with a webhook vs no channel: \d+\.\d\d", last), last
