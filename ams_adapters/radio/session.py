"""The coordinator session behind the radio route (route.py): the gateway as SE ESI on a Silicon Labs
EZSP coordinator, via bellows.

    session = CoordinatorSession(RadioConfig(device="/dev/ttyUSB0"), state=GatewayRouteState(store, esi_id))
    await session.start()                      # forms the HAN the first time, resumes it after
    await session.provision_device(eui64, install_code, join_window_s=120)
    await session.submit([OutboundFrame(...)]) # contract SubmitResults; DeliveryResult on session.events()
    async for event in session.events(): ...

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
from typing import Any

import bellows.types as bt
import zigpy.backups
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state

from ams_adapters.pacing import Backoff
from ams_adapters.radio.application import SEControllerApplication
from ams_adapters.radio.config import RadioConfig
from ams_adapters.radio.errors import CoordinatorUnavailable
from ams_adapters.radio.esi_answers import EsiAnswering
from ams_adapters.radio.events import (
    CoordinatorReachable,
    CoordinatorUnreachable,
)
from ams_adapters.radio.inventory import InventoryReport
from ams_adapters.radio.metering import MeterReading
from ams_adapters.radio.provisioning import Provisioning
from ams_adapters.radio.sending import FrameSending
from ams_adapters.radio.session_core import (
    LOGGER,
)

# How long a stopping session waits for zigpy to finish a device interview (a Basic read or two).
INTERVIEW_GRACE_S = 5.0


class _Listener:
    """zigpy listener events, forwarded to the route (zigpy dispatches them by method name)."""

    def __init__(self, route: CoordinatorSession) -> None:
        self._route = route

    # A device counts as joined once zigpy has interviewed it (node and simple descriptors):
    # only then does it know the device's SE endpoint. zigpy saves the device in its database
    # when the rest of the interview (Basic's manufacturer and model) is done.
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


class CoordinatorSession(FrameSending, EsiAnswering, Provisioning, InventoryReport, MeterReading):
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
            await self._let_interviews_finish()
            with contextlib.suppress(Exception):
                await self.app.shutdown()
        self._connected.clear()

    async def _let_interviews_finish(self, limit_s: float = INTERVIEW_GRACE_S) -> None:
        """zigpy writes a device to its network database when its interview ends, after reading
        Basic's manufacturer and model, which is later than the route counts it joined (its
        descriptors). A session stopped right after a join (`hangw radio provision`) would leave
        the next process without the device ("unknown device"): give the interview a moment."""
        assert self.app is not None
        deadline = asyncio.get_running_loop().time() + limit_s
        while any(d.initializing for d in self.app.devices.values()):
            if asyncio.get_running_loop().time() >= deadline:
                LOGGER.info("stopping with a device interview unfinished")
                return
            await asyncio.sleep(0.05)

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
        # The one backoff formula (ams_adapters.pacing), with jitter so that gateways that lost
        # their coordinators together do not knock in step.
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s, floor=0.5)
        attempt = 0
        delay = backoff.delay(attempt)
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
                attempt += 1
                delay = backoff.delay(attempt)
                LOGGER.info("coordinator still unreachable (%r), retrying in %.1fs", exc, delay)

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
