"""The ESPI writer benchmark keeps working at a tiny size (its figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_espi_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.espi", "--premises", "2", "--days", "2"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"espi: intervals_per_s=\d+ ratio_vs_csv=\d+\.\d\d", last), last
