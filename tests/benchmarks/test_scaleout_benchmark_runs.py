"""`python -m benchmarks.scaleout` keeps working, tiny: SQLite with one instance, PostgreSQL with
one and with two `hangw serve` instances, the deliveries counted by the benchmark's counting route
(a process of its own). Its figures are read by people; asserted here is what it checks: nothing
lost anywhere, nothing handed twice — by one instance or by two sharing a database (each claims
the rows it sends) — and its last lines."""

from __future__ import annotations

import re
import subprocess
import sys


def test_scaleout_benchmark_counts_every_delivery_once() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaleout", "--premises", "300", "--requests", "10",
         "--concurrency", "4", "--instances", "2", "--timeout", "60"],
        capture_output=True, text=True, timeout=110, check=False,
    )
    out = run.stdout
    assert run.returncode == 0, (out[-3000:], run.stderr[-3000:])
    for label in ("SQLite x1", "PostgreSQL x1", "PostgreSQL x2"):
        assert f"{label}: fan-out: 300 of 300 premises handed" in out, out
        assert (f"{label}: exactly once at the route: 310 deliveries, 310 hand-overs: "
                "nothing lost or doubled") in out, out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"scaleout: instances=2 ratio_vs_1=\d+\.\d\d", lines[-2]), lines[-2]
    assert re.fullmatch(r"fanout-pg: premises=300 seconds=\d+\.\d rss_mb=\d+", lines[-1]), lines[-1]
