"""`hangw demo --once`: the newcomer's first command runs the whole walkthrough and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_once_gets_every_answer(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway", "demo", "--once", "--data-dir", str(tmp_path / "demo"),
                           "--per-tdsp", "4"], capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "every premise answered 'confirmed'" in out
    assert "every premise answered 'acknowledged'" in out
    assert "every premise answered 'completed'" in out
    assert "every step got its expected answers" in out
    assert (tmp_path / "demo" / "hangw.db").exists()
