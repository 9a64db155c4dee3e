"""The local-radio route: the gateway as SE ESI on a Silicon Labs EZSP coordinator, via bellows.

    route = RadioRoute(RadioConfig(device="/dev/ttyUSB0"), state=GatewayRouteState(store, esi_id))
    await route.start()                      # forms the HAN the first time, resumes it after
    await route.provision_device(eui64, install_code, join_window_s=120)
    await route.submit([OutboundFrame(...)]) # contract SubmitResults; DeliveryResult on route.events()
    async for event in route.events(): ...

`state` (ams_adapters/radio/state.py) keeps the device inventory and every outbound id handed to
the coordinator with its outcome — in the gateway's database in production — so a restarted
process never sends an id again; without it they are kept in memory.

One frame is in flight at a time (bellows runs one EZSP command at a time anyway). Frames go out
with APS encryption and APS acknowledgement through `app.request` — never `Device.request`, whose
retries (with forced route discovery) would repeat a text message or an event. A frame whose
outcome is unknown (coordinator lost or timed out mid-send) is reported as such and not repeated,
unless the caller marked it idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import bellows.types as bt
import zigpy.backups
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state
import zigpy.types as zt
import zigpy.zdo.types as zdo_t
from bellows.exception import ControllerError, EzspError

from ams_adapters.contract import RouteCapabilities, SubmitOutcome, SubmitResult
from ams_adapters.radio.application import SEControllerApplication
from ams_adapters.radio.config import RadioConfig
from ams_adapters.radio.errors import CbkeNotSupported, CoordinatorUnavailable
from ams_adapters.radio.events import (
    CbkeRequested,
    CoordinatorReachable,
    CoordinatorUnreachable,
    Delivery,
    DeliveryResult,
    DeviceAssociated,
    DeviceBound,
    DeviceFrame,
    DeviceJoined,
    DeviceJoinFailed,
    DeviceLeft,
    InboundEvent,
    OutboundFrame,
)
from ams_adapters.radio.state import DeviceRecord, DeviceState, MemoryRouteState, OutboundState, RouteStateStore
from zigbee_se import SE_PROFILE_ID, DecodeError, decode_frame, parse_install_code
from zigbee_se.esi import Esi

LOGGER = logging.getLogger(__name__)

KEY_ESTABLISHMENT = 0x0800
# SE 1.x device ids (the Simple Descriptor's device id on profile 0x0109) -> inventory device_type.
SE_DEVICE_TYPES = {
    0x0500: "esi",
    0x0501: "meter",
    0x0502: "in_home_display",
    0x0503: "pct",
    0x0504: "load_control_device",
    0x0505: "smart_appliance",
    0x0506: "prepayment_terminal",
    0x0507: "physical_device",
    0x0508: "remote_communications_device",
}
# APS payload with APS encryption and no fragmentation.
MAX_FRAME_SIZE = 73
DEVICES_PER_COORDINATOR = 32
MAX_JOIN_WINDOW_S = 254  # permitJoining takes one byte; 255 would mean "forever"


def _zcl_tsn(frame: bytes) -> int:
    """The ZCL transaction number: after the manufacturer code when one is present."""
    manufacturer_specific = frame[0] & 0x04
    return frame[3] if manufacturer_specific else frame[1]


class _Listener:
    """zigpy listener events, forwarded to the route (zigpy dispatches them by method name)."""

    def __init__(self, route: RadioRoute) -> None:
        self._route = route

    # A device counts as joined once zigpy has interviewed it (node and simple descriptors):
    # only then does it know the device's SE endpoint, and only then does it save the device
    # in its database.
    def device_joined(self, device: Any) -> None:
        self._route._on_associated(device)

    def raw_device_initialized(self, device: Any) -> None:
        self._route._on_joined(device)

    def device_init_failure(self, device: Any) -> None:
        self._route._on_joined(device)

    def device_left(self, device: Any) -> None:
        self._route._on_left(device)

    def device_removed(self, device: Any) -> None:
        # zigpy's own remove() reports "removed", and forgets the device before the NCP's
        # DEVICE_LEFT arrives, so that one never becomes "device_left".
        self._route._on_left(device)

    def connection_lost(self, exc: Exception | None) -> None:
        self._route._on_connection_lost(exc)


class RadioRoute:
    def __init__(
        self,
        config: RadioConfig,
        *,
        esi: Esi | None = None,
        state: RouteStateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        # The gateway is the premise's ESI: zigbee_se.esi holds what it sent and answers the
        # devices' Get… requests and Time reads from it, on `clock` (unix seconds).
        self.esi = esi or Esi()
        self.clock = clock
        # Outbound records and the device inventory: the gateway's database in production.
        self.state: RouteStateStore = state if state is not None else MemoryRouteState()
        self._writes: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # bellows runs one EZSP command at a time: one frame in flight, ~34 deliveries/s at
        # 115200 baud (benchmarks/radio.py).
        self.capabilities = RouteCapabilities(
            name="radio",
            batch_size=100,
            rate_limit_per_s=30.0,
            max_in_flight=10_000,
            extra={
                "device": config.device,
                "cbke": False,
                "max_frame_size": MAX_FRAME_SIZE,
                "devices_per_coordinator": DEVICES_PER_COORDINATOR,
                "se_versions": ("1.0", "1.1", "1.2"),
            },
        )
        self.app: Any = None
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._queue: asyncio.Queue[OutboundFrame] = asyncio.Queue()
        self._outcomes: dict[str, SubmitResult] = {}
        self._connected = asyncio.Event()
        self._joins: dict[str, asyncio.Future[int]] = {}
        self._sender: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._present: set[str] = set()
        self._joined_announced: set[str] = set()
        self._inflight: asyncio.Task[Any] | None = None
        self._decommissioning = False
        # (device EUI-64, cluster) -> device endpoint: SE clients bound to the ESI (in memory;
        # the NCP's binding table is the durable copy).
        self._bindings: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, form: bool = True) -> None:
        """Connect; form the HAN if the coordinator has none (and `form`), else resume it."""
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop())
        await self._connect(auto_form=form)
        self._sender = loop.create_task(self._send_loop())

    async def _connect(self, *, auto_form: bool) -> None:
        # What ControllerApplication.new() does, except that a failed start closes the database
        # again: new() leaves aiosqlite's thread running, which keeps a CLI process alive.
        app = await self._startup(auto_form)
        if app.formed_now:
            # Start again on the formed network so that the NCP has our endpoints (see
            # SEControllerApplication.formed_now).
            await app.shutdown()
            app = await self._startup(False)
        app.se_packet_hook = self._on_se_packet
        app.se_zdo_hook = self._on_se_zdo
        app.add_listener(_Listener(self))
        await self._load_bindings(app)
        self._opened(app)

    async def _startup(self, auto_form: bool) -> SEControllerApplication:
        app = SEControllerApplication(self.config.zigpy_config())
        await app._load_db()
        try:
            await app.startup(auto_form=auto_form)
        except BaseException:
            with contextlib.suppress(Exception):
                await app.shutdown()
            raise
        return app

    async def _load_bindings(self, app: Any) -> None:
        """The NCP's binding table (kept in its flash) -> the route's bindings, so that devices
        bound before a restart still get pushed updates."""
        ezsp = app._ezsp
        try:
            status, size = await ezsp.getConfigurationValue(configId=bt.EzspConfigId.CONFIG_BINDING_TABLE_SIZE)
            size = int(size) if status == bt.EzspStatus.SUCCESS else 0
        except Exception as exc:  # no table to read: bindings are learnt from new Bind_req only
            LOGGER.info("binding table size not readable: %r", exc)
            return
        found: dict[tuple[str, int], int] = {}
        for index in range(min(size, 255)):
            status, entry = await ezsp.getBinding(index=index)
            if status != bt.EmberStatus.SUCCESS:
                break
            if entry.type == bt.EmberBindingType.UNICAST_BINDING and int(entry.local) == self.config.se_endpoint:
                found[(str(entry.identifier), int(entry.clusterId))] = int(entry.remote)
        self._bindings = found

    def _opened(self, app: Any) -> None:
        self.app = app
        own = app.state.node_info.ieee
        self._present.update(str(ieee) for ieee in app.devices if ieee != own)
        for ieee, device in app.devices.items():
            if ieee != own:
                self._persist(self._adopt(str(ieee), int(device.nwk), self._device_type(device)))
        self._connected.set()
        info = app.state.node_info
        self._emit(CoordinatorReachable(info.manufacturer, info.model, info.version))

    async def stop(self) -> None:
        self._closing = True
        for task in (self._sender, self._reconnecting, *self._tasks):
            if task is not None:
                task.cancel()
        await self.flush_state()
        if self._writer is not None:
            self._writer.cancel()
        if self.app is not None:
            with contextlib.suppress(Exception):
                await self.app.shutdown()
        self._connected.clear()

    @property
    def reachable(self) -> bool:
        return self._connected.is_set()

    def _on_connection_lost(self, exc: Exception | None) -> None:
        if self._closing or not self._connected.is_set():
            return
        self._connected.clear()
        # bellows keeps a command pending across an NCP reset until its 10 s timeout, holding
        # its request lock; drop everything in flight so the restarted stack is not blocked.
        if self._inflight is not None:
            self._inflight.cancel()
        for task in self._tasks:
            task.cancel()
        # zigpy's own device interviews hold the same lock (e.g. a device that just joined).
        if self.app is not None:
            for device in self.app.devices.values():
                device.cancel_initialization()
        self._emit(CoordinatorUnreachable(reason=repr(exc) if exc else "port closed"))
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        # The same application object is restarted: its device table (and database) stays,
        # so frames queued for known devices still have somewhere to go.
        app = self.app
        with contextlib.suppress(Exception):
            await app.disconnect()
        delay = self.config.reconnect_min_s
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                # Never form on reconnect: forming would replace the HAN every device joined.
                await app.startup(auto_form=False)
                await self._load_bindings(app)
                self._opened(app)
                return
            except Exception as exc:  # any failure means "try again later"
                with contextlib.suppress(Exception):
                    await app.disconnect()  # release the port lock a half-open start took
                LOGGER.info("coordinator still unreachable (%r), retrying in %.1fs", exc, delay)
                delay = min(delay * 2, self.config.reconnect_max_s)

    # ------------------------------------------------------------------ persistence
    def _persist(self, write: Awaitable[None]) -> None:
        """Queue a state write from a zigpy callback (which cannot await): written in order."""
        self._writes.put_nowait(write)

    async def _write_loop(self) -> None:
        while True:
            write = await self._writes.get()
            try:
                await write
            except Exception:  # a failed write is logged; the route keeps working
                LOGGER.exception("radio route state not written")
            finally:
                self._writes.task_done()

    async def flush_state(self) -> None:
        """Wait until every queued state write is done (or there is no writer to do them)."""
        if self._writer is not None and not self._writer.done():
            await self._writes.join()

    # ------------------------------------------------------------------ events
    def _emit(self, event: InboundEvent) -> None:
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[InboundEvent]:
        while True:
            yield await self._events.get()

    async def next_event(self, timeout: float | None = None) -> InboundEvent:
        return await asyncio.wait_for(self._events.get(), timeout)

    # ------------------------------------------------------------------ sending
    async def submit(self, items: Sequence[OutboundFrame]) -> list[SubmitResult]:
        """Queue frames for devices. An outbound id is never sent twice, across restarts too:
        the route's state store remembers every id it accepted and what became of it."""
        results = []
        for item in items:
            if item.outbound_id in self._outcomes:  # this process has it already
                results.append(self._outcomes[item.outbound_id])
                continue
            accepted = SubmitResult(item.outbound_id, SubmitOutcome.ACCEPTED, reference=item.outbound_id)
            record = await self.state.outbound(item.outbound_id)
            if record is not None:
                result = await self._resubmitted(item, record.state, record.reason, accepted)
            else:
                reason = self._reject_reason(item)
                if reason is not None:
                    result = SubmitResult(item.outbound_id, SubmitOutcome.REJECTED, reason=reason)
                else:
                    await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.QUEUED)
                    self._queue.put_nowait(item)
                    result = accepted
            self._outcomes[item.outbound_id] = result
            results.append(result)
        return results

    async def _resubmitted(
        self, item: OutboundFrame, state: OutboundState, reason: str | None, accepted: SubmitResult
    ) -> SubmitResult:
        """An id an earlier process accepted: its outcome again, never a second transmission
        of something that may have reached the device."""
        if state is OutboundState.QUEUED or (state is OutboundState.SENDING and item.idempotent):
            self._queue.put_nowait(item)  # it never left (or may safely leave again)
            return accepted
        if state is OutboundState.SENDING:
            reason = "the gateway stopped while this was being sent: not repeated"
            await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.UNKNOWN, reason)
            state = OutboundState.UNKNOWN
        self._emit(DeliveryResult(item.outbound_id, item.eui64, Delivery(state.value), reason))
        return accepted

    def _reject_reason(self, item: OutboundFrame) -> str | None:
        if item.cluster_id == KEY_ESTABLISHMENT:
            return str(CbkeNotSupported("cannot send Key Establishment frames"))
        limit = MAX_FRAME_SIZE
        if len(item.zcl_frame) > limit:
            return f"zcl_frame={len(item.zcl_frame)} bytes: limit {limit} (no APS fragmentation)"
        try:
            zt.EUI64.convert(item.eui64)
        except ValueError:
            return f"eui64={item.eui64!r}: not an EUI-64 (aa:bb:cc:dd:ee:ff:00:11)"
        try:
            decode_frame(item.cluster_id, item.zcl_frame)
        except DecodeError as exc:
            return f"zcl_frame: {exc}"
        return None

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            while True:
                if item.expires_at is None:
                    await self._connected.wait()
                else:  # an item waiting for the coordinator still expires on time
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._connected.wait(), max(item.expires_at - time.time(), 0))
                if item.expires_at is not None and time.time() >= item.expires_at:
                    outcome: DeliveryResult | None = DeliveryResult(
                        item.outbound_id, item.eui64, Delivery.EXPIRED, "expired before sending"
                    )
                else:
                    outcome = await self._send_one(item)
                if outcome is not None:
                    await self.state.record_outbound(
                        item.outbound_id, item.eui64, OutboundState(outcome.outcome.value), outcome.reason
                    )
                    self._emit(outcome)
                    break
                # The frame never reached the coordinator: send it once reconnected.

    async def _send_one(self, item: OutboundFrame) -> DeliveryResult | None:
        app = self.app
        ieee = zt.EUI64.convert(item.eui64)
        device = app.devices.get(ieee) if app is not None else None
        if device is None:
            return DeliveryResult(item.outbound_id, item.eui64, Delivery.FAILED, "unknown device")
        dst_ep = self._device_endpoint(device, item.cluster_id)
        # Written before the frame leaves: a process killed from here on leaves "sending",
        # which a restarted route reports as unknown instead of sending again.
        await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.SENDING)
        request = asyncio.get_running_loop().create_task(
            app.request(
                device,
                SE_PROFILE_ID,
                item.cluster_id,
                self.config.se_endpoint,
                dst_ep,
                _zcl_tsn(item.zcl_frame),
                item.zcl_frame,
                expect_reply=False,  # replies on 0x0109 come through the packet hook
                ask_for_ack=True,
                aps_encryption=True,
            )
        )
        self._inflight = request
        try:
            await asyncio.wait({request})
            if request.cancelled():
                # bellows leaves a command pending across an NCP reset until its 10 s timeout;
                # the route gives up on it when the connection drops (see _on_connection_lost).
                return self._unknown(item, "coordinator lost during send")
            request.result()
        except zigpy.exceptions.DeliveryError as exc:
            if not self._connected.is_set() or exc.status is None:
                return self._unknown(item, f"coordinator lost during send: {exc}")
            status = getattr(exc.status, "name", str(exc.status))
            return DeliveryResult(item.outbound_id, item.eui64, Delivery.FAILED, status)
        except (ControllerError, EzspError) as exc:
            # bellows checks "running" before touching the serial port: nothing went out.
            if "not running" in str(exc):
                self._connected.clear()
                await self.state.record_outbound(item.outbound_id, item.eui64, OutboundState.QUEUED)
                return None
            return self._unknown(item, repr(exc))
        except Exception as exc:  # timeouts, NCP failures: outcome unknown
            return self._unknown(item, repr(exc) or type(exc).__name__)
        finally:
            self._inflight = None
        self.esi.observe(item.cluster_id, item.zcl_frame, self.clock(), item.eui64)
        return DeliveryResult(item.outbound_id, item.eui64, Delivery.DELIVERED)

    def _unknown(self, item: OutboundFrame, reason: str) -> DeliveryResult | None:
        if item.idempotent:
            return None  # safe to send again once the coordinator is back
        return DeliveryResult(item.outbound_id, item.eui64, Delivery.UNKNOWN, reason)

    @staticmethod
    def _device_endpoint(device: Any, cluster_id: int) -> int:
        """The device endpoint on profile 0x0109 that is a client of the cluster."""
        se_eps = [ep for ep_id, ep in device.endpoints.items() if ep_id and ep.profile_id == SE_PROFILE_ID]
        for ep in se_eps:
            if cluster_id in ep.out_clusters or cluster_id in ep.in_clusters:
                return int(ep.endpoint_id)
        return int(se_eps[0].endpoint_id) if se_eps else 1

    # ------------------------------------------------------------------ receiving
    def _eui64_of(self, nwk: int) -> str | None:
        app = self.app
        if app is None:
            return None
        for device in app.devices.values():
            if device.nwk == nwk:
                return str(device.ieee)
        return None

    @staticmethod
    def _source_nwk(packet: zt.ZigbeePacket) -> int:
        """The NWK address a device frame came from (devices send with NWK addressing)."""
        assert packet.src is not None
        return int(packet.src.address)  # type: ignore[arg-type]

    def _on_se_packet(self, packet: zt.ZigbeePacket) -> None:
        eui64 = self._eui64_of(self._source_nwk(packet)) or f"nwk:{self._source_nwk(packet):04x}"
        data = bytes(packet.data.serialize())
        encrypted = zt.TransmitOptions.APS_Encryption in packet.tx_options
        if packet.cluster_id == KEY_ESTABLISHMENT:
            self._emit(CbkeRequested(eui64))
            return
        try:
            frame = decode_frame(packet.cluster_id, data)
        except DecodeError as exc:
            self._emit(
                DeviceFrame(eui64, packet.cluster_id, data, None, None, str(exc), packet.lqi, packet.rssi, encrypted)
            )
            return
        self._emit(
            DeviceFrame(
                eui64, packet.cluster_id, data, frame.command, frame.fields, None, packet.lqi, packet.rssi, encrypted
            )
        )
        for cluster, reply in self.esi.answer(frame, self.clock(), eui64):
            task = asyncio.get_running_loop().create_task(self._reply(packet, cluster, reply))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_se_zdo(self, packet: zt.ZigbeePacket, command: zdo_t.ZDOCmd, args: list[Any]) -> None:
        """Service discovery and binding by devices registering with the ESI (the NCP answered)."""
        sender = self._eui64_of(self._source_nwk(packet))
        if command == zdo_t.ZDOCmd.Match_Desc_req:
            LOGGER.info("%s looks for profile 0x%04X servers %s", sender, int(args[1]), [hex(c) for c in args[2]])
            return
        src, src_ep, cluster, dst = args
        own = self.app.state.node_info.ieee if self.app is not None else None
        if src != own or int(src_ep) != self.config.se_endpoint or getattr(dst, "addrmode", None) != 3:
            return  # not a binding of our ESI endpoint to a device (the stack refused it)
        eui64, endpoint = str(dst.ieee), int(dst.endpoint)
        bound = command == zdo_t.ZDOCmd.Bind_req
        if bound:
            self._bindings[(eui64, int(cluster))] = endpoint
        else:
            self._bindings.pop((eui64, int(cluster)), None)
        self._emit(DeviceBound(eui64, int(cluster), endpoint, bound))

    def bound_devices(self, cluster_id: int) -> list[str]:
        """Devices that bound this SE cluster to the ESI (they asked for unsolicited updates)."""
        return sorted(eui for (eui, cluster) in self._bindings if cluster == cluster_id)

    async def _reply(self, packet: zt.ZigbeePacket, cluster: int, frame: bytes) -> None:
        """Answer a device on the endpoint pair it used (ESI replies are idempotent reads)."""
        app = self.app
        eui64 = self._eui64_of(self._source_nwk(packet))
        device = app.devices.get(zt.EUI64.convert(eui64)) if app and eui64 else None
        if device is None:
            return
        try:
            await app.request(
                device,
                SE_PROFILE_ID,
                cluster,
                packet.dst_ep,
                packet.src_ep,
                frame[1],
                frame,
                expect_reply=False,
                ask_for_ack=True,
                aps_encryption=True,
            )
        except Exception as exc:  # the device asks again if it needs to
            LOGGER.info("ESI reply to %s not delivered: %r", device.ieee, exc)

    # ------------------------------------------------------------------ provisioning
    def _on_left(self, device: Any) -> None:
        eui64 = str(device.ieee)
        for key in [k for k in self._bindings if k[0] == eui64]:
            del self._bindings[key]
        if eui64 in self._present:
            self._present.discard(eui64)
            reason = "HAN decommissioned" if self._decommissioning else "left the HAN"
            self._persist(self.state.upsert_device(eui64, DeviceState.REMOVED, reason=reason))
            self._emit(DeviceLeft(eui64=eui64))

    async def _adopt(self, eui64: str, nwk: int, device_type: str | None) -> None:
        """A device zigpy's network state knows but the inventory does not (e.g. joined before
        the inventory moved to the gateway's store) is recorded as joined."""
        if await self.state.device(eui64) is None:
            await self.state.upsert_device(eui64, DeviceState.JOINED, nwk=nwk, device_type=device_type)

    def _on_associated(self, device: Any) -> None:
        self._persist(self.state.upsert_device(str(device.ieee), DeviceState.FIND_PENDING, nwk=int(device.nwk)))
        self._emit(DeviceAssociated(eui64=str(device.ieee), nwk=int(device.nwk)))
        self._joined_announced.discard(str(device.ieee))
        task = asyncio.get_running_loop().create_task(self._await_descriptors(device))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_descriptors(self, device: Any) -> None:
        """Joined, for the route, once zigpy knows the device's endpoints and clusters.

        zigpy's interview goes on to read Basic's manufacturer and model; an SE device that
        does not answer that (the simulators' devices do not) would keep the join pending for
        zigpy's timeouts, although everything needed to send it frames is known.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while not self._descriptors_known(device):
                    await asyncio.sleep(0.05)
                self._on_joined(device)

    @staticmethod
    def _descriptors_known(device: Any) -> bool:
        endpoints = [ep for ep_id, ep in device.endpoints.items() if ep_id]
        return bool(endpoints) and all(ep.status != zigpy.endpoint.Status.NEW for ep in endpoints)

    def _on_joined(self, device: Any) -> None:
        eui64 = str(device.ieee)
        self._present.add(eui64)
        if eui64 in self._joined_announced:
            return  # already reported when its descriptors arrived
        self._joined_announced.add(eui64)
        self._persist(
            self.state.upsert_device(
                eui64, DeviceState.JOINED, nwk=int(device.nwk), device_type=self._device_type(device)
            )
        )
        self._emit(DeviceJoined(eui64=eui64, nwk=int(device.nwk)))
        waiter = self._joins.get(eui64)
        if waiter is not None and not waiter.done():
            waiter.set_result(int(device.nwk))

    @staticmethod
    def _device_type(device: Any) -> str | None:
        """The SE device type of its 0x0109 endpoint (Simple Descriptor), as the inventory names it."""
        for ep_id, ep in device.endpoints.items():
            if ep_id and ep.profile_id == SE_PROFILE_ID and ep.device_type is not None:
                return SE_DEVICE_TYPES.get(int(ep.device_type), f"se_0x{int(ep.device_type):04x}")
        return None

    async def provision_device(
        self, eui64: str, install_code: str, join_window_s: int = 120, *, cbke: bool = False
    ) -> DeviceJoined | DeviceJoinFailed:
        """Admit one device by its install code and wait for it to join (or the window to end)."""
        if cbke:
            raise CbkeNotSupported("provisioning asked for certificate-based key establishment")
        ieee = zt.EUI64.convert(eui64)  # ValueError names the bad text
        code = parse_install_code(install_code)  # InstallCodeError names field and CRC
        return await self.admit(str(ieee), code.link_key, join_window_s)

    async def admit(self, eui64: str, link_key: bytes, join_window_s: int) -> DeviceJoined | DeviceJoinFailed:
        """Let one device join with its link key for the window, however long.

        The NCP permits joining for at most 254 s at a time (one byte; 255 means "forever",
        which no install-code window should be), so longer windows are renewed until the
        device joins or the window ends. A coordinator that drops out meanwhile is waited for.
        """
        if join_window_s < 1:
            raise ValueError(f"join_window_s={join_window_s}: at least 1 second")
        ieee = zt.EUI64.convert(eui64)
        key = zt.KeyData(link_key)
        if not self._connected.is_set():
            raise CoordinatorUnavailable("coordinator not connected: cannot permit joining")
        loop = asyncio.get_running_loop()
        end = loop.time() + join_window_s
        waiter: asyncio.Future[int] = loop.create_future()
        self._joins[str(ieee)] = waiter
        await self.state.upsert_device(str(ieee), DeviceState.PROVISION_REQUESTED)
        try:
            while (left := end - loop.time()) > 0:
                await self._connected.wait()
                chunk = max(1, min(MAX_JOIN_WINDOW_S, round(left)))
                try:
                    await self.app.permit_with_link_key(ieee, key, time_s=chunk)
                except Exception as exc:  # the coordinator went away: renew once it is back
                    LOGGER.info("permit joining for %s failed (%r), retrying", ieee, exc)
                    await asyncio.sleep(self.config.reconnect_min_s)
                    continue
                done, _ = await asyncio.wait({waiter}, timeout=min(chunk, end - loop.time()))
                if done:
                    return DeviceJoined(eui64=str(ieee), nwk=waiter.result())
            failed = DeviceJoinFailed(
                eui64=str(ieee),
                reason=f"no join within {join_window_s}s (wrong install code, out of range, or not in pairing mode)",
            )
            await self.state.upsert_device(failed.eui64, DeviceState.FAILED, reason=failed.reason)
            self._emit(failed)
            return failed
        finally:
            self._joins.pop(str(ieee), None)
            # bellows leaves the install-code TC policy set after permit_with_link_key
            # (RADIO.md §3): put back the configured one so later joins need a key again.
            with contextlib.suppress(Exception):
                await self.app._ezsp.setPolicy(
                    policyId=bt.EzspPolicyId.TRUST_CENTER_POLICY,
                    decisionId=self.app._ezsp._protocol.tc_policy,
                )

    async def remove_device(self, eui64: str) -> None:
        if not self._connected.is_set():
            raise CoordinatorUnavailable("coordinator not connected: cannot remove devices")
        await self.app.remove(zt.EUI64.convert(eui64))

    async def decommission(self, *, leave_timeout_s: float = 10.0) -> list[str]:
        """Take the HAN down: every device is asked to leave (ZDO Mgmt_Leave) and forgotten by
        zigpy, the coordinator is factory-reset (network key, PAN, key table gone) and the
        inventory marks every device removed. The route stops; a later start forms a new HAN.
        Returns the EUI-64s the inventory held."""
        if not self._connected.is_set():
            raise CoordinatorUnavailable("coordinator not connected: cannot decommission the HAN")
        app = self.app
        own = app.state.node_info.ieee
        known = {d.eui64 for d in await self.inventory()}
        self._decommissioning = True
        for ieee in [ieee for ieee in app.devices if ieee != own]:
            known.add(str(ieee))
            await app.remove(ieee)  # zigpy sends Mgmt_Leave and drops it from its database
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(leave_timeout_s):
                while any(ieee != own for ieee in app.devices):
                    await asyncio.sleep(0.05)
        self._closing = True  # the resets below are not a lost coordinator to reconnect to
        await app.reset_network_info()
        await self.flush_state()
        await self.state.forget_devices()
        self._present.clear()
        await self.stop()
        return sorted(known)

    def client_devices(self, cluster_id: int) -> list[str]:
        """Joined devices with an SE endpoint that is a client of the cluster (EUI-64s)."""
        if self.app is None:
            return []
        own = self.app.state.node_info.ieee
        return [
            str(d.ieee)
            for d in self.app.devices.values()
            if d.ieee != own
            and any(
                ep_id and ep.profile_id == SE_PROFILE_ID and cluster_id in ep.out_clusters
                for ep_id, ep in d.endpoints.items()
            )
        ]

    async def inventory(self, *, include_removed: bool = False) -> list[DeviceRecord]:
        """The HAN's devices as the route's state store keeps them (the gateway's database)."""
        await self.flush_state()
        return await self.state.devices(include_removed=include_removed)

    def zigpy_devices(self) -> list[dict[str, Any]]:
        """The HAN's devices as zigpy knows them (its network state, not the inventory)."""
        if self.app is None:
            return []
        own = self.app.state.node_info.ieee
        return [
            {"eui64": str(d.ieee), "nwk": int(d.nwk), "endpoints": sorted(e for e in d.endpoints if e)}
            for d in self.app.devices.values()
            if d.ieee != own
        ]

    async def backup(self) -> dict[str, Any]:
        backup = await self.app.backups.create_backup(load_devices=True)
        return dict(backup.as_dict())

    async def restore(self, backup: dict[str, Any]) -> None:
        await self.app.backups.restore_backup(zigpy.backups.NetworkBackup.from_dict(backup))

    def network_info(self) -> tuple[zigpy.state.NodeInfo, zigpy.state.NetworkInfo]:
        if self.app is None:
            raise CoordinatorUnavailable("coordinator not connected")
        return self.app.state.node_info, self.app.state.network_info


async def coordinator_info(config: RadioConfig) -> dict[str, Any]:
    """Firmware and network of a coordinator, formed or not (for `hangw radio info`)."""
    app = SEControllerApplication(config.zigpy_config())
    try:
        await app.connect()
        manufacturer, board, version = await app._get_board_info()
        (eui64,) = await app._ezsp.getEui64()
        info: dict[str, Any] = {
            "manufacturer": manufacturer,
            "board": board,
            "firmware": version,
            "ezsp_version": app._ezsp.ezsp_version,
            "eui64": str(eui64),
            "network": None,
        }
        try:
            await app.load_network_info(load_devices=False)
        except zigpy.exceptions.NetworkNotFormed:
            return info
        net = app.state.network_info
        info["network"] = {
            "channel": int(net.channel),
            "pan_id": f"0x{int(net.pan_id):04X}",
            "extended_pan_id": str(net.extended_pan_id),
            "security_level": int(net.security_level),
        }
        return info
    finally:
        with contextlib.suppress(Exception):
            await app.disconnect()


async def restore_backup(config: RadioConfig, backup: dict[str, Any]) -> None:
    """Write a zigpy network backup onto a coordinator (a replacement stick), formed or not."""
    app = SEControllerApplication(config.zigpy_config())
    try:
        await app.connect()
        await app.backups.restore_backup(zigpy.backups.NetworkBackup.from_dict(backup))
    finally:
        with contextlib.suppress(Exception):
            await app.disconnect()
