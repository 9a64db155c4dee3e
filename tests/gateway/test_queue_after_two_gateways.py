"""`queue_after` across gateway instances: two providers' overlapping load-control events accepted
at the same moment by two gateways on one PostgreSQL database (each its own engine, pool and
dispatcher, as two `hangw serve` processes have) are both accepted, one moved after the other —
their windows on the premise never overlap. (`refuse` is shown with two processes in
tests/gateway/test_shared_state_instances.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.gateway.conftest import ONCOR, PREMISES_CSV, running_gateway

ROUNDS = 6


async def test_queue_after_moves_one_of_two_simultaneous_events(tmp_path: Path, migrated_pg_url: str) -> None:
    policy = {"pipeline": {"overlap_policy": "queue_after"}}
    async with contextlib.AsyncExitStack() as stack:
        one = await stack.enter_async_context(running_gateway(tmp_path / "one", migrated_pg_url, **policy))
        two = await stack.enter_async_context(running_gateway(tmp_path / "two", migrated_pg_url, **policy))
        await one.load_premises(PREMISES_CSV)
        _a, alpha = await one.new_party("Alpha", "100000001")
        _b, beta = await one.new_party("Beta", "100000002")
        for token in (alpha, beta):
            await one.active_agreement(token, ONCOR, "MTR-1", "alice@example.test", scopes=["load_control"])
        for window in range(1, ROUNDS + 1):
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=window)
            body = {"kind": "load_control", "esi_ids": [ONCOR], "device_classes": 1, "criticality": 3,
                    "duration_minutes": 60, "start": start.isoformat()}
            first, second = await asyncio.gather(
                one.client.post("/v1/han-requests", headers=one.auth(alpha), json=body),
                two.client.post("/v1/han-requests", headers=two.auth(beta), json=body))
            assert first.status_code == second.status_code == 202, (first.text, second.text)
            starts = sorted(datetime.fromisoformat(r.json()["starts_at"]) for r in (first, second))
            assert starts[0] == start, (window, starts)
            assert starts[1] >= start + timedelta(minutes=60), (window, starts)  # after the other's end
