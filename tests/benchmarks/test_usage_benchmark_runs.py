"""The usage benchmark keeps working at a tiny size (its figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_usage_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.usage", "--premises", "3", "--days", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    *_, headend, last = run.stdout.strip().splitlines()
    assert re.fullmatch(r"headend=multispeak reads=\d+ ingest=\d+\.\d\ds ingest_per_s=\d+ ratio_vs_simulated=\d+\.\d\d",
                        headend), headend
    assert re.fullmatch(r"usage: ingest_per_s=\d+ export_premises=0 seconds=\d+\.\d\d rss_mb=\d+ "
                        r"ratio_vs_read=\d+\.\d\d", last), last
