"""The usage benchmark (ingest, and the report export beside its read baseline) keeps working at a
tiny size (its figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_usage_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.usage", "--premises", "3", "--days", "1",
                          "--ingest-premises", "2", "--ingest-days", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    *_, csv_line, espi_line, last = run.stdout.strip().splitlines()
    for fmt, line in (("csv", csv_line), ("espi", espi_line)):  # both formats exported and measured
        assert re.fullmatch(rf"  {fmt}_export=\d+\.\d\ds \(.*\) rss=\d+ MB \(render processes \d+ MB each at most\) "
                            r"ratio_vs_read=\d+\.\d\d", line), line
    assert re.fullmatch(r"usage: ingest_per_s=\d+ export_premises=3 seconds=\d+\.\d\d rss_mb=\d+ "
                        r"ratio_vs_read=\d+\.\d\d", last), last
