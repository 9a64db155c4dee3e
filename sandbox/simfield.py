"""The simulated field behind `routes.kind = "simulated"` (`hangw serve` for trying the API, `hangw
sim-field`, the tests) and behind the demo's head-ends: meters across the five TDSPs with devices of
several firmware profiles, installed and joined. The gateway only sees the route
(`sandbox.simulated_route.SimulatedRoute`, found by name through the `hangw.routes` entry points).
`simulators` is imported inside the functions: `hangw` loads this module's `register` at every start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (TDSP, ESI ID prefix, ESI ID length): DOMAIN.md's prefixes.
TDSPS = (
    ("oncor", "1044372", 17),
    ("centerpoint", "1008901", 22),
    ("aep_central", "1003278", 17),
    ("aep_north", "1020404", 17),
    ("tnmp", "1040051", 17),
)
# Device pairs per premise, rotating: several firmware profiles and SE versions.
MIX = (
    ("silabs-ihd", "silabs-pct"),
    ("silabs-ihd", "nxp-pct"),
    ("silabs-ihd", "exegin-water-heater"),
    ("budget-ihd-lossy", "silabs-pool-pump"),
    ("silabs-ihd", "freescale-pct-se10"),
)
SE_VERSIONS = ("1.1", "1.1", "1.2", "1.0")


@dataclass
class SimPremise:
    esi_id: str
    tdsp: str
    meter_number: str
    se_version: str
    profiles: tuple[str, ...]


def premises(per_tdsp: int) -> list[SimPremise]:
    out = []
    n = 0
    for tdsp, prefix, length in TDSPS:
        for i in range(per_tdsp):
            esi = prefix + str(i + 1).rjust(length - len(prefix), "0")
            out.append(SimPremise(esi, tdsp, f"SIM-{n + 1:05d}", SE_VERSIONS[n % len(SE_VERSIONS)],
                                  MIX[n % len(MIX)]))
            n += 1
    return out


def premises_csv(items: list[SimPremise], email: str) -> str:
    lines = ["esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter"]
    lines += [f"{p.esi_id},{p.meter_number},{email},Demo REP,residential,{p.se_version},no" for p in items]
    return "\n".join(lines) + "\n"


def build_field(clock: Any, items: list[SimPremise], first: int = 0) -> tuple[Any, dict[str, list[Any]]]:
    """A SimField with one meter per premise and its devices provisioned and powered on (they join
    `join_time_s` later on `clock`). Returns the field and the devices by ESI ID. `first`: the
    number of the first premise, from which its meter's and devices' EUI-64s and install codes are
    made (fields built separately, one per head-end, pass distinct numbers)."""
    from simulators.addressing import install_code_with_crc
    from simulators.factory import make_device
    from simulators.field import SimField
    from simulators.meter import SimMeter
    from simulators.profiles import load_profiles

    profiles = load_profiles()
    field = SimField(clock)
    devices: dict[str, list[Any]] = {}
    for n, p in enumerate(items, start=first):
        meter = field.add_meter(SimMeter(p.esi_id, clock, eui64=(0x0007810000000000 + n).to_bytes(8, "little"),
                                         se_version=p.se_version, join_time_s=0.5))
        meter.initialize_han()
        devices[p.esi_id] = []
        for slot, pid in enumerate(p.profiles):
            eui = (0x001BC50000000000 + n * 8 + slot).to_bytes(8, "little")
            code = install_code_with_crc(bytes([(n * 8 + slot) % 251 + 1]) * 16)
            dev = make_device(profiles[pid], eui, code, clock)
            meter.provision_device(eui, code, join_window_s=86_400)
            meter.join(dev)
            devices[p.esi_id].append(dev)
    return field, devices


class ScaledClock:
    """Wall time sped up `speed` times on the running asyncio loop (the simulators' TimerClock
    protocol), so a demo's 30-second confirmations and minute-long events pass in seconds."""

    def __init__(self, speed: float = 1.0, seed: int | None = None) -> None:
        import asyncio
        import random
        import time

        self.speed = speed
        self.rng = random.Random(seed)
        self._t0 = time.time()
        self._time = time.time
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._t0 + (self._time() - self._t0) * self.speed

    def call_at(self, when: float, cb: Any, *args: Any) -> Any:
        return self._loop.call_later(max(0.0, (when - self.now()) / self.speed), cb, *args)

    def call_later(self, delay: float, cb: Any, *args: Any) -> Any:
        return self._loop.call_later(max(0.0, delay / self.speed), cb, *args)


class BriskClock:
    """Wall time, with every timer firing `speed` times sooner (the simulators' TimerClock protocol): a
    resident's confirmation after 30 s comes after 1.5 s, a 1-minute event ends after 3 s, while every
    timestamp and expiry stays on the wall clock that the gateway, the adapters and the head-ends
    share (a ScaledClock's field time would run ahead of the head-end's expiry checks)."""

    def __init__(self, speed: float = 1.0, seed: int | None = None) -> None:
        import asyncio
        import random
        import time

        self.speed = speed
        self.rng = random.Random(seed)
        self._time = time.time
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._time()

    def call_at(self, when: float, cb: Any, *args: Any) -> Any:
        return self._loop.call_later(max(0.0, (when - self.now()) / self.speed), cb, *args)

    def call_later(self, delay: float, cb: Any, *args: Any) -> Any:
        return self._loop.call_later(max(0.0, delay / self.speed), cb, *args)


class FrameCounter:
    """Counts every frame handed to each simulated meter, by SE command and message / issuer
    event id, and every text by its words: what the crash test checks ("reached its meter exactly
    once", and never twice under two message ids)."""

    def __init__(self, field: Any) -> None:
        from zigbee_se import DecodeError, decode_frame

        self.counts: dict[str, int] = {}
        self.texts: dict[str, int] = {}  # "<ESI ID>|<message>" of each DisplayMessage
        inner = field.send

        def send(esi_id: str, address: Any, cluster_id: int, frame: bytes) -> int:
            text = None
            try:
                decoded = decode_frame(cluster_id, frame)
                se_id = decoded.fields.get("message_id", decoded.fields.get("issuer_event_id"))
                key = f"{esi_id}|{decoded.command}|{se_id}"
                if decoded.command == "display_message":
                    text = f"{esi_id}|{decoded.fields.get('message')}"
            except DecodeError:
                key = f"{esi_id}|undecodable|{frame.hex()}"
            if field.meter(esi_id).reachable:
                self.counts[key] = self.counts.get(key, 0) + 1
                if text is not None:
                    self.texts[text] = self.texts.get(text, 0) + 1
            result: int = inner(esi_id, address, cluster_id, frame)
            return result

        field.send = send


def field_server_app(per_tdsp: int, speed: float) -> Any:
    """The simulated field as a loopback HTTP service: the other end of RemoteSimulatedRoute."""
    import asyncio
    import contextlib
    import time
    from collections.abc import AsyncIterator

    from fastapi import Body, FastAPI
    from fastapi.responses import JSONResponse

    from ams_adapters.inventory import InventoryUnavailable
    from ams_adapters.usage import UsageUnavailable
    from sandbox.simulated_route import (
        SimulatedRoute,
        event_to_json,
        inventory_to_json,
        operations_from_json,
        unavailable_to_json,
        usage_to_json,
    )

    state: dict[str, Any] = {"log": []}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clock = ScaledClock(speed)
        field, devices = build_field(clock, premises(per_tdsp))
        counter = FrameCounter(field)
        route = SimulatedRoute(field, now=time.time)
        await route.start()
        changed = asyncio.Event()
        state.update(field=field, devices=devices, counter=counter, route=route, changed=changed)

        async def pump() -> None:
            async for event in route.events():
                state["log"].append(event_to_json(event))
                changed.set()

        task = asyncio.create_task(pump())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="simulated field", lifespan=lifespan)

    @app.post("/submit")
    async def submit(batch: list[dict[str, Any]] = Body()) -> list[dict[str, Any]]:  # noqa: B008
        results = await state["route"].submit(operations_from_json(batch))
        return [{"outbound_id": r.outbound_id, "outcome": r.outcome.value, "reference": r.reference,
                 "reason": r.reason, "retry_after_s": r.retry_after_s} for r in results]

    @app.get("/events")
    async def events(after: int = 0, wait: float = 0.0) -> list[Any]:
        log: list[Any] = state["log"]
        if len(log) <= after and wait > 0:
            state["changed"].clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state["changed"].wait(), min(wait, 5.0))
        return [[i + 1, item] for i, item in enumerate(log[after:after + 1000], start=after)]

    @app.get("/meters/{esi_id}")
    async def meter(esi_id: str) -> dict[str, Any]:
        m = state["field"].meter(esi_id)
        return {"esi_id": esi_id, "se_version": str(m.se_version), "reachable": m.reachable}

    @app.get("/meters/{esi_id}/han")
    async def han(esi_id: str) -> Any:
        try:
            return inventory_to_json(await state["route"].han_inventory(esi_id))
        except InventoryUnavailable as exc:
            return JSONResponse(unavailable_to_json(exc), status_code=409)

    @app.get("/meters/{esi_id}/usage")
    async def usage(esi_id: str, start: int, end: int) -> Any:
        try:
            return usage_to_json(await state["route"].read_usage(esi_id, start, end))
        except UsageUnavailable as exc:
            return JSONResponse({"reason": exc.reason}, status_code=409)

    @app.get("/counts")
    async def counts() -> dict[str, int]:
        result: dict[str, int] = state["counter"].counts
        return result

    @app.get("/texts")
    async def texts() -> dict[str, int]:
        result: dict[str, int] = state["counter"].texts
        return result

    return app


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim-field", help="run a simulated field (meters + devices across the "
                                   "five TDSPs) as a loopback service for routes.kind = \"simulated_remote\"")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--per-tdsp", type=int, default=8, help="premises per TDSP")
    parser.add_argument("--speed", type=float, default=1.0, help="field time runs this many times faster")
    parser.add_argument("--print-csv", metavar="EMAIL", help="print the premises as the operator's import "
                        "CSV (customer EMAIL) and exit")
    parser.set_defaults(func=_run)


def _run(args: Any) -> int:
    if args.print_csv:
        print(premises_csv(premises(args.per_tdsp), args.print_csv), end="")
        return 0
    import uvicorn

    uvicorn.run(field_server_app(args.per_tdsp, args.speed), host=args.host, port=args.port,
                log_config=None, access_log=False)
    return 0
