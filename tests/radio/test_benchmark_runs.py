"""`python -m benchmarks.radio` runs end to end and ends with its ratio line (a short run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_radio_benchmark_prints_its_ratio_last() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.radio", "--frames", "20", "--no-thread"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert re.fullmatch(r"radio ratio vs line rate: \d+\.\d\d", lines[-1]), lines
    assert lines[0] == "frames delivered and APS-acknowledged: 20 in " + lines[0].split(" in ")[1]
