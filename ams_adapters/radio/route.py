"""The radio route behind the shared route contract (ams_adapters/contract.py).

One coordinator serves one HAN, so this route answers for the ESI ID(s) configured for it (usually
one premise; the first is where its device inventory is kept): the gateway itself is that
premise's ESI. Submit results and capabilities are the contract's own types, straight from
CoordinatorSession; this layer maps targets and the per-device events onto the contract:

- target DEVICE: the frame goes to that device; DeliveredToMeter when its APS ACK arrives
  (the "meter" is the gateway's own ESI, so delivery to the ESI and to the air coincide).
- target CAPABLE_DEVICES: one send per joined device that is a client of the cluster;
  DeliveredToMeter once every send ended with at least one ACK, else DeliveryFailed.
- target METER: kept as the ESI's premise-wide state (what devices get when they ask with
  GetCurrentPrice, GetScheduledEvents, GetLastMessage) and DeliveredToMeter at once.
- device answers become DeviceResponse, tied to the outbound item by message id or issuer event id.
- provisioning: PROVISION_DEVICE → REQUESTED, FIND_PENDING (the device associated), JOINED
  (interviewed) or FAILED (window over); DELETE_DEVICE / CLEAR_DEVICES → DELETED per device;
  DECOMMISSION_HAN → every device asked to leave, the coordinator leaves its network and the
  inventory is forgotten, then DONE (a later start forms a new HAN).
- the HAN inventory (han_inventory): the coordinator's own device table (radio/inventory.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from ams_adapters.contract import (
    ALL_OPERATIONS,
    ALL_PROVISIONING,
    ContractError,
    DeliveredToMeter,
    DeliveryFailed,
    DeviceResponse,
    HanOperation,
    InboundEvent,
    MeterCapabilities,
    MeterReachability,
    ProvisioningKind,
    ProvisioningRequest,
    ProvisioningState,
    ProvisioningUpdate,
    RouteCapabilities,
    SubmitOutcome,
    SubmitResult,
    TargetKind,
)
from ams_adapters.inventory import HanInventory, InventoryUnavailable
from ams_adapters.radio import events as radio_events
from ams_adapters.radio.config import RadioConfig
from ams_adapters.radio.events import Delivery, OutboundFrame
from ams_adapters.radio.metering import REGISTER_ATTRIBUTES, meter_read_of, read_profile_usage
from ams_adapters.radio.session import CoordinatorSession, coordinator_info, restore_backup
from ams_adapters.radio.session_core import MAX_FRAME_SIZE
from ams_adapters.radio.state import RouteStateStore
from ams_adapters.se_frames import operation_frame
from ams_adapters.usage import MeterRead, UsageNotSupported, UsageRead, UsageUnavailable
from zigbee_se import EncodeError

LOGGER = logging.getLogger(__name__)
PREMISE = "*"  # answers to what was published to the ESI itself (contract target METER), any device's

# The field that ties a device's answer to what it answers (SE 1.x).
ANSWER_KEYS = {
    "display_message": "message_id",
    "message_confirmation": "message_id",
    "publish_price": "issuer_event_id",
    "price_acknowledgement": "issuer_event_id",
    "load_control_event": "issuer_event_id",
    "report_event_status": "issuer_event_id",
}


@dataclasses.dataclass
class _Fanout:
    outbound_id: str
    esi_id: str
    pending: set[str]
    delivered: int = 0
    reasons: list[str] = dataclasses.field(default_factory=list)


class RadioRoute:
    def __init__(
        self,
        config: RadioConfig,
        esi_ids: str | Sequence[str],
        *,
        state: RouteStateStore | None = None,
        backup_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.esi_ids = (esi_ids,) if isinstance(esi_ids, str) else tuple(esi_ids)
        if not self.esi_ids:
            raise ContractError("esi_ids", esi_ids, "at least one ESI ID")
        self.esi_id = self.esi_ids[0]
        self.radio = CoordinatorSession(config, state=state, clock=clock)
        self.backup_file = backup_file
        self._clock = clock
        self._results: dict[str, SubmitResult] = {}
        self._fanouts: dict[str, _Fanout] = {}  # sub-send id -> its fan-out
        self._answers: dict[tuple[int, str, int], str] = {}  # (cluster, eui64, key) -> outbound
        self._requests: dict[str, str] = {}  # eui64 -> provisioning request id
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump: asyncio.Task[None] | None = None

    @property
    def capabilities(self) -> RouteCapabilities:
        # The coordinator is the premise's ESI: it carries every HAN operation itself.
        return dataclasses.replace(self.radio.capabilities, provisioning=ALL_PROVISIONING, operations=ALL_OPERATIONS)

    async def start(self) -> None:
        """Resume the HAN; on a coordinator without one, restore the backup file if there is one,
        else form a new HAN (and write the backup file, when configured)."""
        check = getattr(self.radio.state, "check_premise", None)
        if check is not None:
            await check()  # fail at startup, naming the ESI ID, not at the first device
        backup = self.backup_file
        if backup is not None and backup.exists():
            info = await coordinator_info(self.radio.config)
            if info["network"] is None:
                LOGGER.info("coordinator has no network: restoring %s", backup)
                await restore_backup(self.radio.config, json.loads(backup.read_text()))
        await self.radio.start(form=True)
        if backup is not None and not backup.exists():
            await self.write_backup(backup)
        self._pump = asyncio.get_running_loop().create_task(self._translate())

    async def write_backup(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(await self.radio.backup(), indent=2)
        # It holds the network key: readable by the gateway's user only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)

    async def close(self) -> None:
        for task in (self._pump, *self._tasks):
            if task is not None:
                task.cancel()
        await self.radio.stop()

    async def meter_capabilities(self, esi_id: str) -> MeterCapabilities:
        self._check_esi(esi_id)
        return MeterCapabilities(max_devices=32, max_load_control_devices=32)

    async def han_inventory(self, esi_id: str) -> HanInventory:
        """What the coordinator — the premise's ESI — knows of its HAN now."""
        if esi_id not in self.esi_ids:
            raise InventoryUnavailable(f"esi_id {esi_id!r}: this radio serves {', '.join(self.esi_ids)}",
                                       refused=True)
        if not self.radio.reachable:
            raise InventoryUnavailable("coordinator unreachable", retry_after_s=self.radio.config.reconnect_max_s)
        devices = await self.radio.han_devices()
        return HanInventory(esi_id, str(self.radio.app.state.node_info.ieee), self._clock(), devices)

    # -- the meter over the HAN (radio/metering.py) -------------------------------------------
    def _meter(self, esi_id: str) -> str:
        """The HAN's meter: the one joined device with a Metering server (SE endpoint)."""
        self._check_esi(esi_id)
        if not self.radio.reachable:
            raise UsageUnavailable("the coordinator is not connected", retry_after_s=self.radio.config.reconnect_max_s)
        meters = self.radio.metering_devices()
        if not meters:
            raise UsageNotSupported(self.capabilities.name, f"no meter with a Metering server has joined the HAN "
                                    f"of {esi_id}: the radio reads the meter over the HAN only")
        return meters[0]

    async def read_meter(self, esi_id: str) -> MeterRead:
        """An on-demand read: the meter's summation and demand attributes, read now over the HAN."""
        eui64 = self._meter(esi_id)
        attrs = await self.radio.read_metering(eui64, REGISTER_ATTRIBUTES)
        return meter_read_of(attrs, int(self._clock()))

    async def read_usage(self, esi_id: str, start: int, end: int) -> list[UsageRead]:
        """The meter's 15-minute intervals through GetProfile; `UsageNotSupported` for a meter
        without it (before SE 1.1)."""
        return await read_profile_usage(self.radio, self._meter(esi_id), start, end)

    def _check_esi(self, esi_id: str) -> None:
        if esi_id not in self.esi_ids:
            raise ContractError("esi_id", esi_id, f"this radio serves {', '.join(self.esi_ids)} only")

    def events(self) -> AsyncIterator[InboundEvent]:
        async def stream() -> AsyncIterator[InboundEvent]:
            while True:
                yield await self._events.get()

        return stream()

    # ------------------------------------------------------------------ submitting
    async def submit(self, batch: Sequence[HanOperation]) -> list[SubmitResult]:
        results = []
        for op in batch:
            if op.outbound_id not in self._results:
                self._results[op.outbound_id] = await self._submit_one(op)
            results.append(self._results[op.outbound_id])
        return results

    def _reject(self, op: HanOperation, reason: str) -> SubmitResult:
        return SubmitResult(op.outbound_id, SubmitOutcome.REJECTED, reason=reason)

    async def _submit_one(self, op: HanOperation) -> SubmitResult:
        if op.esi_id not in self.esi_ids:
            return self._reject(op, f"esi_id {op.esi_id!r}: this radio serves {', '.join(self.esi_ids)}")
        if self._clock() >= op.expires_at:
            return self._reject(op, "expires_at has passed")
        try:  # the radio sends frames: it encodes them (once per request and SE version)
            frame = operation_frame(op, max_frame_size=MAX_FRAME_SIZE)
        except EncodeError as exc:
            return self._reject(op, f"SE frame: {exc}")
        key_field = ANSWER_KEYS.get(op.command)
        key = op.fields.get(key_field) if key_field else None
        if op.target.kind is TargetKind.METER:
            self.radio.esi.observe(op.cluster_id, frame, self._clock())
            self._emit(DeliveredToMeter(op.outbound_id, op.esi_id, self._clock(), op.outbound_id))
            if key is not None:
                self._answers[(op.cluster_id, PREMISE, int(key))] = op.outbound_id
            # Devices bound to the ESI for this cluster asked for unsolicited updates: push it
            # (the others ask with GetCurrentPrice / GetScheduledEvents / GetLastMessage).
            bound = self.radio.bound_devices(op.cluster_id)
            if bound and self.radio.reachable:
                await self.radio.submit([
                    OutboundFrame(f"{op.outbound_id}@{eui}", eui, op.cluster_id, frame, expires_at=op.expires_at)
                    for eui in bound
                ])
            return SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED, reference=op.outbound_id)
        if op.target.kind is TargetKind.DEVICE:
            assert op.target.eui64 is not None
            targets = [op.target.eui64]
        else:
            targets = self.radio.client_devices(op.cluster_id)
            if not targets:
                return self._reject(op, f"no joined device is a client of cluster 0x{op.cluster_id:04X}")
            # Devices that join later ask the ESI for what they missed.
            self.radio.esi.observe(op.cluster_id, frame, self._clock())
        if not self.radio.reachable:
            return SubmitResult(
                op.outbound_id,
                SubmitOutcome.RETRY_LATER,
                reason="coordinator unreachable",
                retry_after_s=self.radio.config.reconnect_max_s,
            )
        sub_ids = [op.outbound_id if len(targets) == 1 else f"{op.outbound_id}@{eui}" for eui in targets]
        fanout = _Fanout(op.outbound_id, op.esi_id, set(sub_ids))
        items = [
            OutboundFrame(sub_id, eui, op.cluster_id, frame, expires_at=op.expires_at)
            for sub_id, eui in zip(sub_ids, targets, strict=True)
        ]
        # Registered before submitting: an id a previous process sent has its outcome re-emitted
        # by the radio at once, and the pump must find the fan-out it belongs to.
        for item in items:
            self._fanouts[item.outbound_id] = fanout
            if key is not None:
                self._answers[(op.cluster_id, item.eui64, int(key))] = op.outbound_id
        radio_results = await self.radio.submit(items)
        refused = [r for r in radio_results if r.outcome is not SubmitOutcome.ACCEPTED]
        for item, result in zip(items, radio_results, strict=True):
            if result.outcome is not SubmitOutcome.ACCEPTED:
                self._fanouts.pop(item.outbound_id, None)
                fanout.pending.discard(item.outbound_id)
                fanout.reasons.append(f"{item.eui64}: {result.reason}")
        if len(refused) == len(items):
            return self._reject(op, "; ".join(r.reason or "refused" for r in refused))
        return SubmitResult(op.outbound_id, SubmitOutcome.ACCEPTED, reference=op.outbound_id)

    # ------------------------------------------------------------------ provisioning
    async def provision(self, request: ProvisioningRequest) -> SubmitResult:
        accepted = SubmitResult(request.request_id, SubmitOutcome.ACCEPTED, reference=request.request_id)
        if request.esi_id not in self.esi_ids:
            return SubmitResult(
                request.request_id,
                SubmitOutcome.REJECTED,
                reason=f"esi_id {request.esi_id!r}: this radio serves {', '.join(self.esi_ids)}",
            )
        if request.kind is ProvisioningKind.INITIALIZE_HAN:
            # start() formed (or resumed) the HAN: the coordinator is the initialized ESI.
            self._update(request.request_id, ProvisioningState.DONE, None)
            return accepted
        if not self.radio.reachable:
            return SubmitResult(
                request.request_id,
                SubmitOutcome.RETRY_LATER,
                reason="coordinator unreachable",
                retry_after_s=self.radio.config.reconnect_max_s,
            )
        if request.kind is ProvisioningKind.DECOMMISSION_HAN:
            self._spawn(self._decommission(request.request_id))
            return accepted
        if request.kind is ProvisioningKind.PROVISION_DEVICE:
            assert request.eui64 is not None and request.link_key is not None
            assert request.join_window_s is not None
            self._requests[request.eui64] = request.request_id
            self._update(request.request_id, ProvisioningState.REQUESTED, request.eui64)
            self._spawn(self._admit(request.request_id, request.eui64, request.link_key, request.join_window_s))
            return accepted
        eui64s = (
            [request.eui64]
            if request.kind is ProvisioningKind.DELETE_DEVICE
            else [d.eui64 for d in await self.radio.inventory()]
        )
        for eui64 in eui64s:
            assert eui64 is not None
            self._requests[eui64] = request.request_id
            await self.radio.remove_device(eui64)
        if request.kind is ProvisioningKind.CLEAR_DEVICES:
            self._update(request.request_id, ProvisioningState.DONE, None)
        return accepted

    async def _decommission(self, request_id: str) -> None:
        try:
            removed = await self.radio.decommission()
        except Exception as exc:  # reported, not raised: the request was accepted
            self._update(request_id, ProvisioningState.FAILED, None, f"decommission failed: {exc!r}")
            return
        for eui64 in removed:
            self._update(request_id, ProvisioningState.DELETED, eui64)
        self._update(request_id, ProvisioningState.DONE, None)

    async def _admit(self, request_id: str, eui64: str, link_key: bytes, window_s: int) -> None:
        result = await self.radio.admit(eui64, link_key, window_s)
        if isinstance(result, radio_events.DeviceJoinFailed):
            self._update(request_id, ProvisioningState.FAILED, eui64, result.reason)

    # ------------------------------------------------------------------ events
    def _emit(self, event: InboundEvent) -> None:
        self._events.put_nowait(event)

    def _update(
        self, request_id: str | None, state: ProvisioningState, eui64: str | None, reason: str | None = None
    ) -> None:
        self._emit(ProvisioningUpdate(request_id, self.esi_id, state, self._clock(), eui64, reason))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _translate(self) -> None:
        async for event in self.radio.events():
            with contextlib.suppress(Exception):
                self._translate_one(event)

    def _translate_one(self, event: radio_events.RadioEvent) -> None:
        now = self._clock()
        if isinstance(event, radio_events.DeliveryResult):
            fanout = self._fanouts.pop(event.outbound_id, None)
            if fanout is None:
                return
            fanout.pending.discard(event.outbound_id)
            if event.outcome is Delivery.DELIVERED:
                fanout.delivered += 1
            else:
                fanout.reasons.append(f"{event.eui64}: {event.outcome.value}: {event.reason}")
            if fanout.pending:
                return
            if fanout.delivered:
                self._emit(DeliveredToMeter(fanout.outbound_id, fanout.esi_id, now, fanout.outbound_id))
            else:
                self._emit(
                    DeliveryFailed(
                        fanout.outbound_id,
                        fanout.esi_id,
                        now,
                        "; ".join(fanout.reasons),
                        expired=event.outcome is Delivery.EXPIRED,
                    )
                )
        elif isinstance(event, radio_events.DeviceFrame):
            if event.command is None or event.fields is None:
                return
            key_field = ANSWER_KEYS.get(event.command)
            outbound_id = None
            if key_field and key_field in event.fields:
                key = int(event.fields[key_field])
                outbound_id = self._answers.get((event.cluster_id, event.eui64, key)) or self._answers.get(
                    (event.cluster_id, PREMISE, key)
                )
            self._emit(
                DeviceResponse(
                    self.esi_id,
                    event.eui64,
                    event.cluster_id,
                    now,
                    event.command,
                    dict(event.fields),
                    event.zcl_frame,
                    outbound_id,
                )
            )
        elif isinstance(event, radio_events.DeviceAssociated):
            if event.eui64 in self._requests:
                self._update(self._requests[event.eui64], ProvisioningState.FIND_PENDING, event.eui64)
        elif isinstance(event, radio_events.DeviceJoined):
            self._update(self._requests.pop(event.eui64, None), ProvisioningState.JOINED, event.eui64)
        elif isinstance(event, radio_events.DeviceLeft):
            self._update(self._requests.pop(event.eui64, None), ProvisioningState.DELETED, event.eui64)
        elif isinstance(event, radio_events.CbkeRequested):
            self._update(
                self._requests.get(event.eui64),
                ProvisioningState.FAILED,
                event.eui64,
                "the device asked for CBKE (key establishment), which the radio route does not support",
            )
        elif isinstance(event, radio_events.CoordinatorReachable | radio_events.CoordinatorUnreachable):
            reachable = isinstance(event, radio_events.CoordinatorReachable)
            for esi_id in self.esi_ids:
                self._emit(MeterReachability(esi_id, reachable, now))
