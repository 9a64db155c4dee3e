"""Fleet benchmark: 100,000 simulated meters with two devices each, in one process.

    python -m benchmarks.fleet [--meters N]

Builds the fleet on the virtual clock, provisions it (HAN init, provisioning with install codes,
joins and the devices' post-join requests), then sends a PublishPrice (acknowledgement required)
and a start-now LoadControlEvent to every meter and runs 15 virtual minutes so every event
completes. ``frames_per_s`` counts the ZCL frames crossing the meter/device boundary in that
phase (frames delivered to devices, including dropped ones, plus frames devices sent) per second
of wall time. Baseline, measured in the same run: the bare codec decoding and re-encoding the same
kinds of frames (one decode + one encode per frame, the minimum any simulator must spend).
The last line is ``fleet: meters=N devices=M rss_mb=R frames_per_s=F``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from collections import Counter

from simulators.clock import VirtualClock
from simulators.fleet import Fleet
from simulators.meter import ALL_DEVICES, MeterEvent, RelayedFrame
from zigbee_se import SEVersion, decode_frame, encode_frame

SAMPLE = 20_000


def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the peak resident set of this process.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def boundary_frames(fleet: Fleet) -> int:
    total = 0
    for meter in fleet.materialized():
        for d in fleet.devices(meter.esi_id):
            total += d.frames_in + d.dropped + d.frames_out
    return total


def codec_baseline(sample: list[tuple[int, bytes]], rounds: int = 3) -> float:
    """Frames per second for one decode + one encode of each sampled frame (best of rounds)."""
    prepared = []
    for cluster, frame in sample:
        d = decode_frame(cluster, frame)
        direction = d.direction if d.frame_type == 0 else None
        try:
            encode_frame(cluster, d.command, d.fields, se_version=SEVersion.V1_2, tsn=d.tsn,
                         direction=direction)
        except ValueError:
            continue  # a frame the encoder refuses (none in the usual sample) is left out
        prepared.append((cluster, frame, d.command, direction))
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for cluster, frame, command, direction in prepared:
            d = decode_frame(cluster, frame)
            encode_frame(cluster, command, d.fields, se_version=SEVersion.V1_2, tsn=d.tsn,
                         direction=direction)
        best = max(best, len(prepared) / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    clock = VirtualClock(seed=args.seed)
    fleet = Fleet(args.meters, clock)
    statuses: Counter[str] = Counter()
    sample: list[tuple[int, bytes]] = []

    def upstream(event: MeterEvent) -> None:
        if isinstance(event, RelayedFrame):
            statuses[f"0x{event.cluster_id:04x}:{event.frame[2]:02x}"] += 1
            if len(sample) < SAMPLE:
                sample.append((event.cluster_id, event.frame))

    fleet.subscribe(upstream)
    # Building a million long-lived objects would make every full GC pass rescan all of them;
    # pause the cyclic GC while building, then freeze what was built (the measured phase runs
    # with the GC on, over the objects it creates).
    gc.disable()
    t0 = time.perf_counter()
    for esi in fleet.esi_ids():
        fleet.install(esi)
    t_install = time.perf_counter() - t0
    t0 = time.perf_counter()
    clock.advance(120)
    t_join = time.perf_counter() - t0
    gc.collect()
    gc.freeze()
    gc.enable()
    devices = sum(len(fleet.devices(e)) for e in fleet.esi_ids())
    print(f"install: {args.meters} meters, {devices} devices provisioned in {t_install:.1f} s; "
          f"joins and post-join requests in {t_join:.1f} s; rss {rss_mb():.0f} MB")

    price = encode_frame("price", "publish_price", {
        "provider_id": 1, "rate_label": "CPP", "issuer_event_id": 10, "current_time": 0,
        "unit_of_measure": 0, "currency": 840, "price_trailing_digit": 3, "price_tier": 2,
        "number_of_price_tiers": 2, "register_tier": 2, "start_time": 0,
        "duration_in_minutes": 240, "price": 450, "price_control": 0x01}, tsn=1)
    lce = encode_frame("drlc", "load_control_event", {
        "issuer_event_id": 100, "device_class": 0x000F, "utility_enrollment_group": 0,
        "start_time": 0, "duration_in_minutes": 10, "criticality_level": 4}, tsn=2)
    sample.clear()
    statuses.clear()
    before = boundary_frames(fleet)
    t0 = time.perf_counter()
    for esi in fleet.esi_ids():
        fleet.send(esi, ALL_DEVICES, 0x0700, price)
        fleet.send(esi, ALL_DEVICES, 0x0701, lce)
    clock.advance(15 * 60)
    elapsed = time.perf_counter() - t0
    frames = boundary_frames(fleet) - before
    fps = frames / elapsed
    sample.extend([(0x0700, price), (0x0701, lce)] * 50)
    base = codec_baseline(sample)
    res = dict(sorted(statuses.items()))
    print(f"price + load control: {frames} frames in {elapsed:.1f} s; upstream by cluster:cmd {res}")
    print(f"baseline codec decode+encode: {base:,.0f} frames/s; "
          f"simulator/codec ratio: {fps / base:.3f}")
    print(f"fleet: meters={args.meters} devices={devices} rss_mb={rss_mb():.0f} "
          f"frames_per_s={fps:.0f}")


if __name__ == "__main__":
    main()
