"""Soak: all five head-ends at once with 30 % injected faults (errors, withheld answers, busy,
disconnects, dropped/duplicated/late callbacks, unreachable meters, connections cut by a proxy).
Every operation ends delivered exactly once or expired/failed with a reason; none is lost and
none reaches a simulated meter twice. Bounded: about 15 s of wall time."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from ams_adapters.contract import DeliveredToMeter, DeliveryFailed, HanOperation, OperationKind, SubmitOutcome
from simulators.headends.faults import Faults
from tests.adapters.harness import TDSPS, Rig, install, op, rig

OPS_PER_HEADEND = 60
EXPIRES_IN = 6.0
KINDS = (OperationKind.TEXT, OperationKind.PRICE, OperationKind.LOAD_CONTROL, OperationKind.CANCEL_LOAD_CONTROL)


def _soak_op(tdsp: str, i: int, esi: str) -> HanOperation:
    kind = KINDS[i % len(KINDS)]
    ident = {"message_id": 1000 + i} if kind is OperationKind.TEXT else {"issuer_event_id": 1000 + i}
    return op(kind, esi, f"{tdsp}-{i}", expires_in=EXPIRES_IN, **ident)


async def _outbox(r: Rig, ops: list[HanOperation], finals: dict[str, str]) -> None:
    """A minimal outbox: resubmit RETRY_LATER items after retry_after_s until they are accepted or
    refused (after expiry the adapter refuses them as expired)."""
    due = {o.outbound_id: 0.0 for o in ops}
    by_id = {o.outbound_id: o for o in ops}
    while due:
        now = time.monotonic()
        batch = [by_id[k] for k, t in due.items() if t <= now][: r.adapter.capabilities.batch_size]
        if not batch:
            await asyncio.sleep(0.05)
            continue
        for res in await r.adapter.submit(batch):
            if res.outcome is SubmitOutcome.RETRY_LATER:
                due[res.outbound_id] = time.monotonic() + min(res.retry_after_s or 0.1, 1.0)
                continue
            del due[res.outbound_id]
            if res.outcome is SubmitOutcome.REJECTED:
                finals[res.outbound_id] = f"rejected: {res.reason}"


async def _soak_one(tdsp: str, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    async with rig(tdsp, faults=Faults.uniform(0.3), via_proxy=True, seed=seed,
                   profile_overrides={"request_timeout_s": 0.5, "breaker_reset_s": 0.3, "expiry_grace_s": 0.5}) as r:
        esis = await install(r, 6)
        assert r.proxy is not None
        r.proxy.cut_randomly(2.0, rng)
        for e in rng.sample(esis, 2):
            r.core.meter_unreachable_for(e, rng.uniform(1.0, 8.0))  # some come back in time, some do not
        ops = [_soak_op(tdsp, i, esis[i % len(esis)]) for i in range(OPS_PER_HEADEND)]
        finals: dict[str, str] = {}
        await _outbox(r, ops, finals)
        deadline = time.monotonic() + EXPIRES_IN + 4.0
        while time.monotonic() < deadline:
            if all(o.outbound_id in finals or r.ends(o.outbound_id) for o in ops):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # late and duplicated callbacks still arriving must change nothing
        counts = {"delivered": 0, "expired": 0, "failed": 0, "rejected": 0}
        for o in ops:
            ends = r.ends(o.outbound_id)
            if o.outbound_id in finals:
                assert not ends or (isinstance(ends[0], DeliveryFailed) is False and len(ends) <= 1), (o, ends)
                assert "expired" in finals[o.outbound_id] or "head-end" in finals[o.outbound_id]
                counts["rejected"] += 1
                continue
            assert len(ends) == 1, (tdsp, o.outbound_id, ends)  # ended, and exactly once
            end = ends[0]
            if isinstance(end, DeliveredToMeter):
                counts["delivered"] += 1
            else:
                assert end.reason, end
                counts["expired" if end.expired else "failed"] += 1
        assert all(n <= 1 for n in r.core.meter_deliveries.values()), r.core.meter_deliveries.most_common(3)
        assert counts["delivered"] > 0
        counts["injected"] = sum(v for k, v in r.core.stats.items() if k != "unsolicited_frames")
        counts["proxy_cuts"] = r.proxy.cuts
        return counts


async def test_soak_30_percent_faults_every_operation_ends_once() -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(_soak_one(t, 100 + i) for i, t in enumerate(TDSPS)))
    summary = dict(zip(TDSPS, results, strict=True))
    print("soak:", summary, f"{time.monotonic() - started:.1f}s")
    assert time.monotonic() - started < 60
    with contextlib.suppress(KeyError):
        assert sum(c["injected"] for c in results) > 0
