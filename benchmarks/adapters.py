"""Adapter benchmark: operations per second through each transport to its emulated head-end,
with the full adapter (validation, idempotency tracking, rate limiting, batching, in-flight bound,
breaker, timeouts, retries, notification bookkeeping) against the same transport carrying the
same requests with no adapter logic (its ``send`` called directly).

    python -m benchmarks.adapters [--ops N] [--rounds R]

Both paths run against the same in-process emulator (loopback HTTP for MultiSpeak, the real
Mosquitto for 61968-9, loopback TCP for the binary protocol); the emulator carries out every
request (frames to simulated meters, notifications back) in both. The profile's rate limit is
lifted for the measurement (it would measure the configured limit, not the code). Rounds
alternate raw/adapter and the best of each is kept. Last line:
``adapters ratio vs raw transport: multispeak=X cim=Y binary=Z``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ams_adapters.adapter import HeadEndAdapter
from ams_adapters.contract import CAPABLE_DEVICES, HanOperation, OperationKind
from ams_adapters.factory import AdapterConfig, make_transport
from ams_adapters.profiles import load_profile
from ams_adapters.wire.common import HeadEndRequest, HeadEndRequestKind, Notification
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from simulators.fleet import Fleet
from zigbee_se import SEVersion, encode_frame

TRANSPORT_TDSP = {"multispeak": "oncor", "cim": "centerpoint", "binary": "tnmp"}
FIELDS = {"provider_id": 1, "rate_label": "TOU", "issuer_event_id": 1, "current_time": 0, "unit_of_measure": 0,
          "currency": 840, "price_trailing_digit": 2, "price_tier": 1, "number_of_price_tiers": 3,
          "register_tier": 1, "start_time": 0, "duration_in_minutes": 60, "price": 1234}
FRAME = encode_frame(0x0700, "publish_price", FIELDS)


def operations(fleet: Fleet, n: int, tag: str) -> list[HanOperation]:
    exp = time.time() + 600
    return [HanOperation(f"{tag}-{i}", fleet.esi_id(i % 100), CAPABLE_DEVICES, OperationKind.PRICE, 0x0700,
                         "publish_price", FIELDS | {"issuer_event_id": i}, SEVersion.V1_1, exp)
            for i in range(n)]


def raw_requests(ops: Sequence[HanOperation], frames: bool) -> list[HeadEndRequest]:
    """What the adapter sends, built without it: the frame (encoded beforehand, once) only where
    the transport carries frames (binary), the fields on every transport."""
    return [HeadEndRequest(o.outbound_id, o.esi_id, HeadEndRequestKind.PRICE, o.expires_at, "capable_devices", None,
                           o.cluster_id, o.command, dict(o.fields), FRAME if frames else b"", "1.1") for o in ops]


async def measure(transport_name: str, n: int, rounds: int) -> tuple[float, float]:
    tdsp = TRANSPORT_TDSP[transport_name]
    overrides: dict[str, Any] = {"rate_limit_per_s": 1e6, "max_in_flight": 10 * n}
    profile = load_profile(tdsp, **overrides)
    clock = RealClock(seed=1)
    fleet = Fleet(100, clock)
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    headend = headend_for_profile(profile, fleet, clock, topic_prefix=prefix, latency_median_s=0.001,
                           latency_p95_s=0.002, capacity=100 * n)
    await headend.start()
    port = 1883 if transport_name == "cim" else headend.port  # type: ignore[attr-defined]
    cfg = AdapterConfig(tdsp=tdsp, url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port,
                        topic_prefix=prefix, profile_overrides=overrides)
    adapter = HeadEndAdapter(profile, make_transport(profile, cfg))
    await adapter.start()
    raw = make_transport(profile, AdapterConfig(tdsp=tdsp, url=f"http://127.0.0.1:{port}", host="127.0.0.1",
                                                port=port, topic_prefix=prefix))
    received: list[Notification] = []
    await raw.start(received.extend)
    best_raw = best_adapter = 0.0
    batch = profile.batch_size
    try:
        for r in range(rounds):
            ops = operations(fleet, n, f"raw{r}")
            reqs = raw_requests(ops, profile.carries_frames)
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                await raw.send(reqs[i:i + batch])
            best_raw = max(best_raw, n / (time.perf_counter() - t0))
            ops = operations(fleet, n, f"adapter{r}")
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                await adapter.submit(ops[i:i + batch])
            best_adapter = max(best_adapter, n / (time.perf_counter() - t0))
            await asyncio.sleep(0.2)  # let notifications of this round drain
            while adapter.pending_events():
                await adapter._events.get()
    finally:
        await raw.close()
        await adapter.close()
        await headend.close()
    return best_raw, best_adapter


async def main_async(n: int, rounds: int) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for name in ("multispeak", "cim", "binary"):
        raw, through = await measure(name, n, rounds)
        ratios[name] = through / raw
        print(f"{name:10s} raw transport {raw:9.0f} ops/s   through adapter {through:9.0f} ops/s   "
              f"ratio {ratios[name]:.2f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios = asyncio.run(main_async(args.ops, args.rounds))
    print("adapters ratio vs raw transport: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
