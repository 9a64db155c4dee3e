"""`hangw provision meter-read ESI_ID --tdsp … [--hours N]` from a terminal (issue 16), against a
`hangw sim headend` process: the register and the interval data the head-end's simulated meter has
(the model is deterministic, so the test recomputes both), and the typed refusal of an unknown
meter."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime

import pytest

from gateway.cli import main
from simulators.usage import interval_reads, load_shape, register_now
from tests.adapters.test_provision_cli import _hangw

ESI = "10443720000000001"  # premise 1 of `hangw sim headend`'s fleet


@pytest.mark.parametrize(("tdsp", "where"), [("tnmp", "--port"), ("oncor", "--url")])
async def test_meter_read_from_the_head_end_directly(tdsp: str, where: str) -> None:
    head = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", tdsp, "--listen", "127.0.0.1:0",
        "--meters", "3", "--duration", "25", stdout=asyncio.subprocess.PIPE)
    try:
        assert head.stdout is not None
        line = (await asyncio.wait_for(head.stdout.readline(), 15)).decode()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        target = port.group(1) if where == "--port" else f"http://127.0.0.1:{port.group(1)}"
        rc, out = await _hangw("provision", "meter-read", ESI, "--tdsp", tdsp, where, target, "--hours", "2")
        assert rc == 0, out
        shape = load_shape(ESI)
        stamp = re.search(r"register read at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", out)
        delivered = re.search(r"delivered (\d+) Wh", out)
        assert stamp and delivered, out
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()
        assert int(delivered.group(1)) == register_now(shape, at).delivered_wh
        rows = re.findall(r"^\s+(\d{4}-\d\d-\d\d \d\d:\d\d)\s+(consumption|generation)\s+(\d+)\s+(\w+)$", out, re.M)
        assert rows, out
        first = datetime.strptime(rows[0][0], "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()
        model = interval_reads(shape, first, first + 900 * len({r[0] for r in rows}))
        assert [(c, int(wh), q) for _, c, wh, q in rows] == [(m.channel, m.value_wh, m.quality) for m in model]

        rc, out = await _hangw("provision", "meter-read", "10443729999999999", "--tdsp", tdsp, where, target)
        assert rc == 1 and "no read" in out and "no such meter" in out, out
    finally:
        head.terminate()
        await head.wait()


def test_meter_read_refuses_a_period_too_long(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "meter-read", ESI, "--tdsp", "tnmp", "--port", "9", "--hours", "745"]) == 2
    assert "--hours: 745 is invalid: 0..744" in capsys.readouterr().out
