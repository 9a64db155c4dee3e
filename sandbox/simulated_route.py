"""A route over a simulated field, in process: the stand-in for the per-TDSP head-ends in tests and
in `hangw demo`.

The field is passed in and used by duck typing only (any SimField-like object, the head-end tests' too):
it needs `clock` (`now()`, `call_at()`), `send(esi_id, address, cluster_id, frame) -> int`,
`subscribe(callback) -> unsubscribe`, `meter(esi_id)` with `.reachable` and `.se_version`, and
upstream records shaped like the simulators' `RelayedFrame` (meter_id, eui64, time, cluster_id,
frame), `Reachability` (meter_id, time, reachable) and `HanEvent`; for the HAN inventory, meters
that are the simulators' `SimMeter`s (their HAN records, with when each device was last heard).

Like every route it is idempotent by `outbound_id`: an item submitted twice is answered with its
first result and reaches the meter once. A meter that is unreachable keeps the item until the
meter comes back or the item expires (then `DeliveryFailed(expired=True)`), as a head-end would.

Asked what is on a premise's HAN (`han_inventory`), it answers what the meter itself holds
(`simulators.han_inventory`), at once; a dark meter does not answer (`InventoryUnavailable`).

Asked for a premise's usage (`read_usage`), it answers the simulated meter's 15-minute intervals
(`simulators.usage`, with what load-control events did to the load) that have ended on the field's
clock; a dark meter does not answer (`UsageUnavailable`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx

from ams_adapters.contract import (
    ALL_OPERATIONS,
    ContractError,
    DeliveredToMeter,
    DeliveryFailed,
    DeviceResponse,
    HanOperation,
    InboundEvent,
    MeterCapabilities,
    MeterReachability,
    OperationKind,
    ProvisioningRequest,
    RouteCapabilities,
    SubmitOutcome,
    SubmitResult,
    Target,
    TargetKind,
)
from ams_adapters.inventory import (
    HanInventory,
    InventoryDevice,
    InventoryUnavailable,
    JoinState,
    from_registrations,
)
from ams_adapters.se_frames import operation_frame
from ams_adapters.usage import Channel, MeterRead, Quality, UsageRead, UsageUnavailable
from simulators.han_inventory import han_registrations, meter_id
from zigbee_se import DecodeError, EncodeError, SEVersion, decode_frame

ALL_DEVICES = "all"  # the simulated meter's broadcast address (every capable joined device)


def _eui64_str(raw: bytes) -> str:
    # Over-the-air (little-endian) bytes -> the printed, big-endian form zigpy uses.
    return ":".join(f"{b:02x}" for b in reversed(raw))


def _eui64_bytes(text: str) -> bytes:
    return bytes(reversed(bytes.fromhex(text.replace(":", ""))))


class SimulatedRoute:
    """Route contract over a SimField-like object (see the module docstring)."""

    def __init__(self, field: Any, *, name: str = "simulated", batch_size: int = 200,
                 rate_limit_per_s: float = 100_000.0, max_in_flight: int = 100_000,
                 now: Callable[[], float] | None = None) -> None:
        """`now`: the wall clock items expire by, when the field's clock runs at another pace
        (a sped-up demo field); by default the field's own clock."""
        self.field = field
        self._wall = now
        # No provisioning: the field's devices are installed when it is built (declared empty,
        # so the gateway refuses provisioning for these premises when it is asked).
        self._caps = RouteCapabilities(name=name, batch_size=batch_size,
                                       rate_limit_per_s=rate_limit_per_s,
                                       max_in_flight=max_in_flight, provisioning=frozenset(),
                                       operations=ALL_OPERATIONS)  # frames reach one device too
        self._results: dict[str, SubmitResult] = {}
        self._waiting: dict[str, list[HanOperation]] = {}  # esi_id -> items for a dark meter
        self._queue: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._unsubscribe: Any = None
        self.handed_to_meter = 0
        self._seq = 0

    def _now(self) -> float:
        return self._wall() if self._wall is not None else float(self.field.clock.now())

    @property
    def capabilities(self) -> RouteCapabilities:
        return self._caps

    async def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.field.subscribe(self._on_field_event)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        meter = self.field.meter(esi_id)
        return MeterCapabilities(se_version=SEVersion.parse(str(meter.se_version)))

    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        raise ContractError("kind", request.kind.value,
                            "not supported by the simulated route (provision through the field)")

    async def han_inventory(self, esi_id: str) -> HanInventory:
        try:
            meter = self.field.meter(esi_id)
        except Exception as exc:  # the field says why (unknown meter)
            raise InventoryUnavailable(str(exc), refused=True) from None
        if not meter.reachable:
            raise InventoryUnavailable(f"meter {esi_id} is unreachable: it did not answer", timed_out=True)
        # On the field's clock, as the meter's own "last heard" times (a sped-up demo field runs faster).
        return from_registrations(esi_id, meter_id(meter), float(self.field.clock.now()), han_registrations(meter))

    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]:
        try:
            meter = self.field.meter(esi_id)
        except Exception as exc:  # the field says why (unknown meter)
            raise UsageUnavailable(str(exc)) from None
        if not meter.reachable:
            raise UsageUnavailable(f"meter {esi_id} is unreachable: it did not answer", retry_after_s=60.0)
        # A long period is tens of thousands of computed intervals: off the event loop.
        reads = await asyncio.to_thread(meter.read_usage, start, end)
        return [UsageRead(r.start, r.length_s, Channel(r.channel), r.value_wh, Quality(r.quality))
                for r in reads]

    async def read_meter(self, esi_id: str) -> MeterRead:
        """The meter's register now (an on-demand read): agrees with its interval data to the Wh."""
        try:
            meter = self.field.meter(esi_id)
        except Exception as exc:  # the field says why (unknown meter)
            raise UsageUnavailable(str(exc)) from None
        if not meter.reachable:
            raise UsageUnavailable(f"meter {esi_id} is unreachable: it did not answer", retry_after_s=60.0)
        now = await asyncio.to_thread(meter.register_read)
        return MeterRead(now.at, now.delivered_wh, None, now.demand_w)

    # ------------------------------------------------------------------ submit
    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        return [self._submit_one(op) for op in batch]

    def _submit_one(self, op: HanOperation) -> SubmitResult:
        known = self._results.get(op.outbound_id)
        if known is not None:
            return known  # idempotent: the first answer, nothing sent again
        try:
            meter = self.field.meter(op.esi_id)
        except Exception as exc:  # the field says why (unknown meter)
            result = SubmitResult(op.outbound_id, SubmitOutcome.REJECTED, reason=str(exc))
            self._results[op.outbound_id] = result
            return result
        try:  # the field takes frames: the route encodes them (once per request and SE version)
            operation_frame(op, max_frame_size=self._caps.max_frame_size)
        except EncodeError as exc:
            result = SubmitResult(op.outbound_id, SubmitOutcome.REJECTED, reason=f"SE frame: {exc}")
            self._results[op.outbound_id] = result
            return result
        self._seq += 1
        result = SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED, reference=f"sim-{self._seq}")
        self._results[op.outbound_id] = result
        now = self._now()
        if now >= op.expires_at:
            self._emit(DeliveryFailed(op.outbound_id, op.esi_id, now, "expired before delivery",
                                      expired=True))
        elif not meter.reachable:
            self._waiting.setdefault(op.esi_id, []).append(op)
            if self._wall is None:
                self.field.clock.call_at(op.expires_at, self._expire, op)
            else:
                asyncio.get_running_loop().call_later(max(0.0, op.expires_at - self._wall()), self._expire, op)
        else:
            self._hand_over(op, now)
        return result

    def _hand_over(self, op: HanOperation, now: float) -> None:
        if op.target.kind is TargetKind.DEVICE:
            address: Any = _eui64_bytes(op.target.eui64 or "")
        elif op.target.kind is TargetKind.METER:
            address = "meter"
        else:
            address = ALL_DEVICES
        frame = operation_frame(op, max_frame_size=self._caps.max_frame_size)  # encoded at submit: cached
        self.field.send(op.esi_id, address, op.cluster_id, frame)
        self.handed_to_meter += 1
        self._emit(DeliveredToMeter(op.outbound_id, op.esi_id, now, self._results[op.outbound_id].reference))

    def _expire(self, op: HanOperation) -> None:
        waiting = self._waiting.get(op.esi_id, [])
        if op in waiting:
            waiting.remove(op)
            self._emit(DeliveryFailed(op.outbound_id, op.esi_id, self._now(),
                                      "meter unreachable until the item expired", expired=True))

    # ------------------------------------------------------------------ inbound
    def _emit(self, event: InboundEvent) -> None:
        self._queue.put_nowait(event)

    def _on_field_event(self, event: Any) -> None:
        if hasattr(event, "frame") and hasattr(event, "cluster_id"):
            try:
                decoded = decode_frame(event.cluster_id, event.frame)
                command, fields = decoded.command, dict(decoded.fields)
            except DecodeError as exc:
                command, fields = "undecodable", {"reason": str(exc)}
            self._emit(DeviceResponse(event.meter_id, _eui64_str(event.eui64), event.cluster_id,
                                      event.time, command, fields, bytes(event.frame)))
        elif hasattr(event, "reachable"):
            self._emit(MeterReachability(event.meter_id, event.reachable, event.time))
            if event.reachable:
                now = self._now()
                for op in self._waiting.pop(event.meter_id, []):
                    if now < op.expires_at:
                        self._hand_over(op, now)
                    else:
                        self._emit(DeliveryFailed(op.outbound_id, op.esi_id, now,
                                                  "meter unreachable until the item expired",
                                                  expired=True))

    async def events(self) -> AsyncIterator[InboundEvent]:
        while True:
            yield await self._queue.get()

    def drain(self) -> list[InboundEvent]:
        """Events waiting for the consumer, without waiting (for batch consumers)."""
        out: list[InboundEvent] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out


# ---------------------------------------------------------------------- over loopback


def operation_to_json(op: HanOperation) -> dict[str, Any]:
    return {"outbound_id": op.outbound_id, "esi_id": op.esi_id, "target": op.target.kind.value,
            "eui64": op.target.eui64, "kind": op.kind.value, "cluster_id": op.cluster_id,
            "command": op.command, "fields": dict(op.fields), "se_version": str(op.se_version),
            "expires_at": op.expires_at}


def operations_from_json(batch: list[dict[str, Any]]) -> list[HanOperation]:
    """The operations of a `/submit` batch. Operations with equal fields share one mapping (as the
    dispatcher's do), so the field side encodes a fan-out's frame once per SE version."""
    shared: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    ops = []
    for data in batch:
        fields: dict[str, Any] = data["fields"]
        fields = shared.setdefault(tuple(sorted(fields.items())), fields)
        ops.append(HanOperation(
            outbound_id=data["outbound_id"], esi_id=data["esi_id"],
            target=Target(TargetKind(data["target"]), data.get("eui64")), kind=OperationKind(data["kind"]),
            cluster_id=int(data["cluster_id"]), command=data["command"], fields=fields,
            se_version=SEVersion.parse(data["se_version"]), expires_at=float(data["expires_at"])))
    return ops


def event_to_json(event: InboundEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(event).__name__}
    for name in getattr(event, "__slots__", ()):
        value = getattr(event, name)
        out[name] = value.hex() if isinstance(value, bytes) else value
    if isinstance(event, DeviceResponse):
        out["fields"] = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in event.fields.items()}
    return out


def event_from_json(data: dict[str, Any]) -> InboundEvent | None:
    kind = data.pop("type")
    if kind == "DeliveredToMeter":
        return DeliveredToMeter(**data)
    if kind == "DeliveryFailed":
        return DeliveryFailed(**data)
    if kind == "DeviceResponse":
        frame = data.pop("frame")
        return DeviceResponse(**data, frame=bytes.fromhex(frame) if frame else None)
    if kind == "MeterReachability":
        return MeterReachability(**data)
    return None


def inventory_to_json(inventory: HanInventory) -> dict[str, Any]:
    return {"esi_id": inventory.esi_id, "meter_id": inventory.meter_id, "taken_at": inventory.taken_at,
            "devices": [{name: getattr(d, name) for name in d.__slots__} for d in inventory.devices]}


def inventory_from_json(data: dict[str, Any]) -> HanInventory:
    devices = tuple(InventoryDevice(**(d | {"join_state": JoinState(d["join_state"])})) for d in data["devices"])
    return HanInventory(data["esi_id"], data["meter_id"], float(data["taken_at"]), devices)


def unavailable_to_json(exc: InventoryUnavailable) -> dict[str, Any]:
    return {"reason": exc.reason, "retry_after_s": exc.retry_after_s, "refused": exc.refused,
            "timed_out": exc.timed_out}


def usage_to_json(reads: Sequence[UsageRead]) -> list[list[Any]]:
    return [[r.start, r.length_s, r.channel.value, r.value_wh, r.quality.value] for r in reads]


def usage_from_json(rows: list[list[Any]]) -> list[UsageRead]:
    return [UsageRead(int(s), int(n), Channel(c), int(v), Quality(q)) for s, n, c, v, q in rows]


class RemoteSimulatedRoute:
    """The route contract over HTTP to a simulated field in another process (`hangw sim-field`),
    so that the field — and the route's idempotency memory — survive a gateway killed with -9.
    Inbound events are read from the field's numbered event log (at least once: after a restart
    the gateway reads it again from the start, and applying an event twice changes nothing)."""

    def __init__(self, url: str, *, name: str = "simulated-remote", batch_size: int = 200) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=30)
        self._caps = RouteCapabilities(name=name, batch_size=batch_size, rate_limit_per_s=100_000.0,
                                       provisioning=frozenset(), operations=ALL_OPERATIONS)  # as SimulatedRoute
        self._after = 0

    @property
    def capabilities(self) -> RouteCapabilities:
        return self._caps

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        r = await self._client.get(f"/meters/{esi_id}")
        r.raise_for_status()
        return MeterCapabilities(se_version=SEVersion.parse(r.json()["se_version"]))

    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        raise ContractError("kind", request.kind.value, "not supported by the simulated route")

    async def han_inventory(self, esi_id: str) -> HanInventory:
        try:
            r = await self._client.get(f"/meters/{esi_id}/han")
        except httpx.HTTPError as exc:
            raise InventoryUnavailable(f"simulated field at {self.url}: {exc!r}", retry_after_s=1.0) from None
        if r.status_code == 409:  # the field's route could not answer: its reasons, as it gave them
            raise InventoryUnavailable(**r.json())
        r.raise_for_status()
        return inventory_from_json(r.json())

    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]:
        try:
            r = await self._client.get(f"/meters/{esi_id}/usage", params={"start": start, "end": end})
        except httpx.HTTPError as exc:
            raise UsageUnavailable(f"simulated field at {self.url}: {exc!r}", retry_after_s=1.0) from None
        if r.status_code == 409:
            raise UsageUnavailable(r.json()["reason"], retry_after_s=60.0)
        r.raise_for_status()
        return usage_from_json(r.json())

    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        size = self._caps.batch_size
        for start in range(0, len(batch), size):  # the route batches what it sends (Route.submit)
            r = await self._client.post("/submit", json=[operation_to_json(op) for op in batch[start:start + size]])
            r.raise_for_status()
            results.extend(SubmitResult(d["outbound_id"], SubmitOutcome(d["outcome"]), d.get("reference"),
                                        d.get("reason"), d.get("retry_after_s")) for d in r.json())
        return results

    async def events(self) -> AsyncIterator[InboundEvent]:
        while True:
            try:
                r = await self._client.get("/events", params={"after": self._after, "wait": 1.0})
                r.raise_for_status()
            except httpx.HTTPError:
                await asyncio.sleep(0.5)  # the field is restarting: read on where we were
                continue
            for seq, data in r.json():
                self._after = max(self._after, seq)
                event = event_from_json(data)
                if event is not None:
                    yield event
