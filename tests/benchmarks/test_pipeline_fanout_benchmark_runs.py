"""The fan-out part of the pipeline benchmark keeps working, tiny (its figures are read by people,
not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_fanout_benchmark_prints_its_last_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline", "--fanout-only", "--premises", "300"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert "300 of 300 premises handed to the route (300 recorded submitted)" in run.stdout, run.stdout
    assert "another party's single text, sent half-way through the fan-out: handed" in run.stdout, run.stdout
    assert re.fullmatch(r"fanout: premises=300 seconds=\d+\.\d rss_mb=\d+", lines[-1]), lines[-1]
