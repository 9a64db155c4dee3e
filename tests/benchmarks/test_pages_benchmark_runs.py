"""`python -m benchmarks.pages` keeps working, tiny: its figures are read by people; asserted here is
that it runs and ends with its ratio line."""

from __future__ import annotations

import re
import subprocess
import sys


def test_pages_benchmark_prints_its_ratio() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.pages", "--premises", "5", "--rounds", "2"],
                         capture_output=True, text=True, timeout=110, check=False)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    lines = run.stdout.strip().splitlines()
    assert re.fullmatch(r"pages ratio vs api: \d+\.\d\d", lines[-1]), lines[-1]
    assert "page GET /dashboard: median" in run.stdout
