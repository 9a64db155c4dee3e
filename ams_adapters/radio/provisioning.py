"""The HAN's membership: admitting devices with their install-code keys, joins and leaves as zigpy
reports them, removal and decommissioning, and the device inventory."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import bellows.types as bt
import zigpy.backups
import zigpy.endpoint
import zigpy.exceptions
import zigpy.state
import zigpy.types as zt

from ams_adapters.radio.errors import CbkeNotSupported, CoordinatorUnavailable
from ams_adapters.radio.events import (
    DeviceAssociated,
    DeviceJoined,
    DeviceJoinFailed,
    DeviceLeft,
)
from ams_adapters.radio.session_core import (
    LOGGER,
    MAX_JOIN_WINDOW_S,
    SessionCore,
)
from ams_adapters.radio.state import DeviceRecord, DeviceState
from zigbee_se import SE_PROFILE_ID, parse_install_code
from zigbee_se.clusters import se_device_type_name


class Provisioning(SessionCore):
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
        does not answer that would keep the join pending for zigpy's timeouts, although
        everything needed to send it frames is known.
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
                return se_device_type_name(int(ep.device_type))
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
