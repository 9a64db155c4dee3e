"""The MQTT API benchmark keeps working on a tiny size (its figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_mqtt_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.mqtt", "--requests", "10", "--rounds", "1", "--concurrency", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert any(re.match(r"  mqtt: [\d,]+ round trips/s, p50 [\d.]+ ms, p99 [\d.]+ ms", line) for line in lines), lines
    assert re.fullmatch(r"mqtt ratio vs rest: \d+\.\d\d", lines[-1]), lines[-1]
