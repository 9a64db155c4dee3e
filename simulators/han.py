"""The provisioning state machine of one meter's premise HAN (DOMAIN.md "HAN devices").

Pure bookkeeping on plain values: HAN initialization first, then provisioning by EUI-64 and
install code (or link key) with a join window, device limits, delete / clear / decommission, and
the join check itself. ``SimMeter`` drives it and reports each transition upstream.
"""

from __future__ import annotations

from enum import StrEnum

from simulators.addressing import check_eui64, link_key_from_install_code
from simulators.errors import ProvisioningError, SimulatorError

MAX_DEVICES = 5
MAX_DEVICES_ENHANCED = 10
MAX_LOAD_CONTROL_ENHANCED = 8
MIN_JOIN_WINDOW_S = 1.0
MAX_JOIN_WINDOW_S = 30 * 86_400.0  # L+G: 1-30 days; shorter windows are allowed for tests


class HanState(StrEnum):
    NOT_INITIALIZED = "not_initialized"
    READY = "ready"
    DECOMMISSIONED = "decommissioned"


class MeterDeviceStatus(StrEnum):
    """A provisioned device as the simulated meter sees it (the gateway's view is its own DeviceStatus)."""

    PROVISION_REQUESTED = "provision_requested"
    FIND_PENDING = "find_pending"  # the device made first contact
    JOINED = "joined"
    FAILED = "failed"


class JoinFailure(StrEnum):
    HAN_NOT_INITIALIZED = "han_not_initialized"
    NOT_PROVISIONED = "not_provisioned"
    JOIN_WINDOW_EXPIRED = "join_window_expired"
    LINK_KEY_MISMATCH = "link_key_mismatch"
    INVALID_INSTALL_CODE = "invalid_install_code"
    LOAD_CONTROL_LIMIT = "load_control_limit"


class MeterDeviceRecord:
    """The simulated meter's record of one provisioned device."""

    __slots__ = ("eui64", "last_heard", "link_key", "load_control", "reason", "status", "window_end")

    def __init__(self, eui64: bytes, link_key: bytes, window_end: float) -> None:
        self.eui64 = eui64
        self.link_key = link_key
        self.window_end = window_end
        self.status = MeterDeviceStatus.PROVISION_REQUESTED
        self.reason: str | None = None
        self.load_control = False
        # When the meter last received a frame from it (a join request or ZCL): the HAN inventory's
        # "last seen" (simulators/han_inventory.py). On the record, not in a dict per meter: a
        # fleet of 100,000 meters pays a slot per device, not a dict per premise.
        self.last_heard: float | None = None


class HanProvisioning:
    """Devices provisioned on one meter and the limits that apply."""

    __slots__ = ("enhanced", "records", "state")

    def __init__(self, enhanced: bool = False) -> None:
        self.enhanced = enhanced
        self.state = HanState.NOT_INITIALIZED
        self.records: dict[bytes, MeterDeviceRecord] = {}

    @property
    def max_devices(self) -> int:
        return MAX_DEVICES_ENHANCED if self.enhanced else MAX_DEVICES

    def initialize(self) -> None:
        self.state = HanState.READY

    def decommission(self) -> list[bytes]:
        """Meter swap: forget every device; the HAN must be initialized again."""
        gone = list(self.records)
        self.records.clear()
        self.state = HanState.DECOMMISSIONED
        return gone

    def _require_ready(self) -> None:
        if self.state != HanState.READY:
            raise ProvisioningError(
                "han_state", str(self.state), "HAN initialization required first")

    def provision(self, eui64: bytes, *, install_code: bytes | None = None,
                  link_key: bytes | None = None, join_window_s: float, now: float) -> MeterDeviceRecord:
        self._require_ready()
        eui64 = check_eui64(eui64)
        if (install_code is None) == (link_key is None):
            raise SimulatorError("install_code", install_code, "give exactly one of install_code "
                                 "or link_key")
        if install_code is not None:
            link_key = link_key_from_install_code(install_code)
        assert link_key is not None
        if len(link_key) != 16:
            raise SimulatorError("link_key", link_key.hex(), "16 bytes")
        if not MIN_JOIN_WINDOW_S <= join_window_s <= MAX_JOIN_WINDOW_S:
            raise SimulatorError("join_window_s", join_window_s,
                                 f"{MIN_JOIN_WINDOW_S:g}..{MAX_JOIN_WINDOW_S:g} s (1 s to 30 days)")
        if eui64 not in self.records and len(self.records) >= self.max_devices:
            raise ProvisioningError("devices", len(self.records),
                                    f"at most {self.max_devices} devices on this meter")
        rec = MeterDeviceRecord(eui64, link_key, now + join_window_s)
        self.records[eui64] = rec
        return rec

    def delete(self, eui64: bytes) -> None:
        self._require_ready()
        if eui64 not in self.records:
            raise ProvisioningError("eui64", eui64.hex(), "device is not provisioned on this meter")
        del self.records[eui64]

    def clear(self) -> list[bytes]:
        self._require_ready()
        gone = list(self.records)
        self.records.clear()
        return gone

    def first_contact(self, eui64: bytes, now: float) -> JoinFailure | None:
        """A device asks to join: record find-pending or say why it cannot."""
        if self.state != HanState.READY:
            return JoinFailure.HAN_NOT_INITIALIZED
        rec = self.records.get(eui64)
        if rec is None:
            return JoinFailure.NOT_PROVISIONED
        if rec.status == MeterDeviceStatus.JOINED:
            return None  # a rejoin of a device already on the HAN
        if now > rec.window_end:
            rec.status, rec.reason = MeterDeviceStatus.FAILED, JoinFailure.JOIN_WINDOW_EXPIRED
            return JoinFailure.JOIN_WINDOW_EXPIRED
        rec.status = MeterDeviceStatus.FIND_PENDING
        return None

    def complete_join(self, eui64: bytes, device_link_key: bytes | None,
                      load_control: bool) -> JoinFailure | None:
        """Key check: the key the device derived from its own install code must match the
        provisioned one (``None``: the device's install code has a bad CRC, it has no key)."""
        rec = self.records.get(eui64)
        if rec is None or self.state != HanState.READY:
            return JoinFailure.NOT_PROVISIONED
        if device_link_key is None:
            rec.status, rec.reason = MeterDeviceStatus.FAILED, JoinFailure.INVALID_INSTALL_CODE
            return JoinFailure.INVALID_INSTALL_CODE
        if device_link_key != rec.link_key:
            rec.status, rec.reason = MeterDeviceStatus.FAILED, JoinFailure.LINK_KEY_MISMATCH
            return JoinFailure.LINK_KEY_MISMATCH
        if load_control and self.enhanced and rec.status != MeterDeviceStatus.JOINED:
            lc = sum(1 for r in self.records.values()
                     if r.load_control and r.status == MeterDeviceStatus.JOINED)
            if lc >= MAX_LOAD_CONTROL_ENHANCED:
                rec.status, rec.reason = MeterDeviceStatus.FAILED, JoinFailure.LOAD_CONTROL_LIMIT
                return JoinFailure.LOAD_CONTROL_LIMIT
        rec.status = MeterDeviceStatus.JOINED
        rec.load_control = load_control
        rec.reason = None
        return None
