"""The 61968-9 acknowledgement benchmark keeps working at a tiny size (its figures are read by
people, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_cim_acks_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.cim_acks", "--messages", "30", "--db", ""],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"cim-acks: messages=30 on_receipt_s=\d+\.\d\d once_stored_s=\d+\.\d\d ratio=\d+\.\d\d",
                        last), last
