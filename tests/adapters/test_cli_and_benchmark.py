"""`hangw sim headend` runs a head-end as a process that an adapter reaches over real sockets;
`python -m benchmarks.adapters` keeps printing its ratio line."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

from ams_adapters.contract import DeliveredToMeter, OperationKind, SubmitOutcome
from ams_adapters.factory import AdapterConfig, make_adapter
from tests.adapters.harness import op


async def test_sim_headend_process_serves_an_adapter() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sim", "headend", "--tdsp", "tnmp", "--listen", "127.0.0.1:0",
        "--meters", "10", "--install", "1", "--duration", "20", stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
        assert match, line
        adapter = make_adapter(AdapterConfig(tdsp="tnmp", host="127.0.0.1", port=int(match.group(1))))
        await adapter.start()
        try:
            o = op(OperationKind.PRICE, "10443720000000000")
            (res,) = await adapter.submit([o])
            assert res.outcome is SubmitOutcome.ACCEPTED, res
            deadline = time.monotonic() + 5
            delivered = []
            while not delivered and time.monotonic() < deadline:
                delivered = [e for e in await adapter.drain(0.2) if isinstance(e, DeliveredToMeter)]
            assert delivered and delivered[0].outbound_id == o.outbound_id
        finally:
            await adapter.close()
    finally:
        proc.terminate()
        await proc.wait()


def test_adapters_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.adapters", "--ops", "100", "--rounds", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"adapters ratio vs raw transport: multispeak=\d+\.\d\d cim=\d+\.\d\d binary=\d+\.\d\d",
                        last), last


def test_multispeak_groups_benchmark_prints_its_ratio_line() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.multispeak_groups", "--ops", "60", "--rounds", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"multispeak groups ratio vs one operation per meter: \d+\.\d\d", last), last
