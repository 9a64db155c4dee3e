"""The benchmark script keeps working (its figures are read by people, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_codec_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.codec", "--number", "200", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"codec ratio vs hand-written struct: encode=\d+\.\d\d decode=\d+\.\d\d", last), last
