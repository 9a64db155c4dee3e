"""MultiSpeak ...ToGroup benchmark: one text (the same payload) to many meters through the Oncor
adapter, submitted in batches of the profile's size, with `group_operations` on (one
InitiateInHomeDisplayMessageToGroup per batch) against off (one InitiateInHomeDisplayMessage per
meter, the baseline), in the same run against the same in-process emulator (loopback HTTP).

    python -m benchmarks.multispeak_groups [--ops N] [--rounds R]

Rounds alternate baseline/groups and the best of each is kept; the rate limit is lifted (it
would measure the configured limit). Last line:
``multispeak groups ratio vs one operation per meter: X``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import CAPABLE_DEVICES, HanOperation, OperationKind
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from simulators.fleet import Fleet
from zigbee_se import SEVersion

FIELDS = {"message_id": 7, "message_control": 0x80, "start_time": 0, "duration_in_minutes": 60,
          "message": "Peak pricing 4-7pm"}


def operations(fleet: Fleet, n: int, tag: str) -> list[HanOperation]:
    until = time.time() + 600  # one expirationTime: part of the shared payload
    return [HanOperation(f"{tag}-{i}", fleet.esi_id(i), CAPABLE_DEVICES, OperationKind.TEXT, 0x0703,
                         "display_message", FIELDS, SEVersion.V1_1, until) for i in range(n)]


async def _rate(adapter: HeadEndAdapter, ops: list[HanOperation], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(ops), batch):
        results = await adapter.submit(ops[i:i + batch])
        assert all(r.outcome.value == "accepted" for r in results), results[:3]
    return len(ops) / (time.perf_counter() - t0)


async def measure(n: int, rounds: int) -> tuple[float, float]:
    overrides: dict[str, Any] = {"rate_limit_per_s": 1e6, "max_in_flight": 10 * n * rounds}
    profile = load_profile("oncor", **overrides)
    clock = RealClock(seed=1)
    fleet = Fleet(n, clock)
    headend = headend_for_profile(profile, fleet, clock, latency_median_s=0.001, latency_p95_s=0.002,
                           capacity=100 * n * rounds)
    await headend.start()
    url = f"http://127.0.0.1:{headend.port}"  # type: ignore[attr-defined]
    single = make_adapter(AdapterConfig(tdsp="oncor", url=url, profile_overrides=overrides))
    grouped = make_adapter(AdapterConfig(tdsp="oncor", url=url, profile_overrides={**overrides,
                                                                                 "group_operations": True}))
    await single.start()
    await grouped.start()
    best_single = best_grouped = 0.0
    try:
        for r in range(rounds):
            best_single = max(best_single, await _rate(single, operations(fleet, n, f"one{r}"), profile.batch_size))
            best_grouped = max(best_grouped, await _rate(grouped, operations(fleet, n, f"grp{r}"),
                                                         profile.batch_size))
            await asyncio.sleep(0.2)  # let this round's notifications drain
            for adapter in (single, grouped):
                while adapter.pending_events():
                    await adapter._events.get()
        assert headend.core.stats["group_requests"] >= rounds  # the grouped path really grouped
    finally:
        await single.close()
        await grouped.close()
        await headend.close()
    return best_single, best_grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="meters per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    single, grouped = asyncio.run(measure(args.ops, args.rounds))
    print(f"one operation per meter {single:9.0f} ops/s   ...ToGroup {grouped:9.0f} ops/s")
    print(f"multispeak groups ratio vs one operation per meter: {grouped / single:.2f}")


if __name__ == "__main__":
    main()
