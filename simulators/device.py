"""``SimDevice``: the byte-level base of every simulated SE client device.

A device sees only ZCL frames: ``deliver(cluster_id, frame)`` brings one from its ESI and
``uplink(cluster_id, frame)`` (given by ``attach``) sends one back. It does not know whether a
simulated meter or the EZSP coordinator emulator is on the other side. All frame I/O goes through
``zigbee_se.encode_frame`` / ``decode_frame``. Behind a coordinator that speaks ZDO (the EZSP
emulator: ``attach_zdo`` / ``deliver_zdo``) a device whose profile says so registers with the ESI
first (``simulators.registration``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from simulators.addressing import check_eui64, link_key_from_install_code
from simulators.clock import TimerClock
from simulators.errors import SimulatorError
from simulators.frame_cache import decode_shared
from simulators.profiles import FirmwareProfile
from simulators.se_time import from_utc, to_utc
from zigbee_se import (
    ALL_COMMANDS,
    ClusterId,
    DecodedFrame,
    DecodeError,
    Direction,
    FrameType,
    NibblePair,
    SEVersion,
    command_definitions,
    decode_header,
    encode_frame,
)
from zigbee_se.foundation import GLOBAL_BY_ID

if TYPE_CHECKING:
    from simulators.registration import EsiRegistration, ZdoUplink

BASIC = 0x0000
TIME = int(ClusterId.TIME)
PRICE = int(ClusterId.PRICE)
DRLC = int(ClusterId.DRLC)
METERING = int(ClusterId.METERING)
MESSAGING = int(ClusterId.MESSAGING)
KEY_ESTABLISHMENT = 0x0800
CLUSTER_NAMES = {TIME: "time", PRICE: "price", DRLC: "drlc", METERING: "metering",
                 MESSAGING: "messaging"}

# ZCL statuses used in Default Responses (zigpy.zcl.foundation.Status values).
SUCCESS = 0x00
FAILURE = 0x01
MALFORMED_COMMAND = 0x80
UNSUP_CLUSTER_COMMAND = 0x81
UNSUP_GENERAL_COMMAND = 0x82
INVALID_FIELD = 0x85
UNSUPPORTED_ATTRIBUTE = 0x86
INVALID_VALUE = 0x87
INSUFFICIENT_SPACE = 0x89
DUPLICATE_EXISTS = 0x8A
NOT_FOUND = 0x8B
UNSUPPORTED_CLUSTER = 0xC3

Uplink = Callable[[int, bytes], object]
"""How a device sends a frame to its ESI: ``uplink(cluster_id, zcl_frame)``."""


class FrameSink(Protocol):
    """Where a watched device puts each frame it hears (an ``asyncio.Queue`` will do)."""

    def put_nowait(self, item: tuple[int, DecodedFrame], /) -> None: ...


_SE_VERSIONS = {"1.0": SEVersion.V1_0, "1.1": SEVersion.V1_1, "1.2": SEVersion.V1_2}
# SE device ids (Simple Descriptor, profile 0x0109): 0x0500 ESI, 0x0501 metering device, 0x0502
# in-premise (in-home) display, 0x0503 PCT, 0x0504 load control device. zigpy defines no SE device
# ids; checked against Texas Instruments' Z-Stack SE header se.h (ZCL_SE_DEVICEID_*, a copy in
# github.com/efishliu/Agricultural-IOT-System: Example/例程/双机/WSN_ZigBee/Projects/zstack/SE/Source/se.h)
# and zsmartsystems/com.zsmartsystems.zigbee ZigBeeDeviceType.java (SEP_IN_HOME_DISPLAY = 0x0502).
_SE_DEVICE_IDS = {"ihd": 0x0502, "pct": 0x0503, "load_control": 0x0504}
_CLUSTER_IDS = {name: cid for cid, name in CLUSTER_NAMES.items()}
# ZCL data types of the Basic attributes a device answers (zigbee_se knows no Basic attributes).
UINT8, ENUM8, CHAR_STRING = 0x20, 0x30, 0x42
ZCL_VERSION_SE1 = 0x01  # the ZCL revision SE 1.x is built on
MAINS_SINGLE_PHASE = 0x01


@functools.cache
def _v10_field_names(cluster_id: int, command: str) -> frozenset[str]:
    names: set[str] = set()
    for definition in command_definitions(cluster_id, command)[:1]:
        for item in definition.fields_for(SEVersion.V1_0):
            if isinstance(item, NibblePair):
                names.update((item.high.name, item.low.name))
            else:
                names.add(item.name)
    return frozenset(names)


@functools.cache
def _cluster_command_ids(cluster_id: int, direction: Direction) -> frozenset[int]:
    return frozenset(c.command_id for c in ALL_COMMANDS
                     if c.cluster == cluster_id and c.direction == direction)


class SimDevice:
    """Base device: identity, local clock, transaction numbers, frame I/O and counters."""

    __slots__ = (
        "_clk_base_local", "_clk_base_real", "_energy_wh", "_load_since", "_load_w", "_tsn",
        "_uplink", "clock", "dropped", "endpoint", "eui64", "frames", "frames_in", "frames_out",
        "install_code", "link_key", "load_log", "profile", "registration", "se_version", "time_synced",
        "undecodable",
    )

    def __init__(self, eui64: bytes, install_code: bytes, profile: FirmwareProfile, clock: TimerClock,
                 endpoint: int = 1, *, link_key: bytes | None = None) -> None:
        self.eui64 = check_eui64(eui64)
        self.install_code = bytes(install_code)
        # The preconfigured link key the firmware derived from its install code at manufacture
        # (None if the code's CRC is bad: such a device can never join). Computed lazily.
        self.link_key = link_key
        self.profile = profile
        self.clock = clock
        self.endpoint = endpoint
        self.se_version = _SE_VERSIONS[profile.se_version]
        self._uplink: Uplink | None = None
        self._tsn = 0
        now = clock.now()
        # Local clock: base_local + (real - base_real) * (1 + drift); reset by a Time-cluster sync.
        self._clk_base_real = now
        self._clk_base_local = now + profile.quirks.clock_offset_s
        self.time_synced = False
        self._load_w = profile.nominal_load_w if profile.device_type == "ihd" else 0.0
        self._load_since = now
        self._energy_wh = 0.0
        # (time, watts) of every load change: what a load-control event did, for the premise's
        # simulated usage (simulators/usage.py, SimMeter.curtailments).
        self.load_log: list[tuple[float, float]] = []
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.undecodable = 0
        # Every frame the device hears, decoded, for whoever watches it (tests, the demo); a
        # fleet's devices are not watched.
        self.frames: FrameSink | None = None
        self.registration: EsiRegistration | None = None  # (no slot for the time poll: see _poll_time)
        if profile.binds_to_esi:
            # Imported here: ZDO brings zigpy's ZDO and cluster tables (0.17 s, 7 MB) that a
            # fleet's devices, which never register, do not need.
            from simulators.registration import EsiRegistration

            self.registration = EsiRegistration(self)

    # ------------------------------------------------------------------ simple descriptor
    # What a coordinator (the NCP emulator) or an ESI learns from ZDO descriptor requests.
    profile_id = 0x0109  # Smart Energy
    node_type = "router"  # mains-powered SE devices route

    @property
    def device_type(self) -> int:
        """SE device id: 0x0502 in-home display, 0x0503 PCT, 0x0504 load control device."""
        return _SE_DEVICE_IDS[self.profile.device_type]

    @property
    def input_clusters(self) -> tuple[int, ...]:
        """Server clusters: Basic, Identify, Key Establishment."""
        return (0x0000, 0x0003, KEY_ESTABLISHMENT)

    @property
    def output_clusters(self) -> tuple[int, ...]:
        """Client clusters: those of the firmware profile, plus Key Establishment."""
        return (*sorted(_CLUSTER_IDS[c] for c in self.profile.clusters), KEY_ESTABLISHMENT)

    # ------------------------------------------------------------------ link to the ESI
    def attach(self, uplink: Uplink) -> None:
        """Connect the device to its ESI: ``uplink(cluster_id, zcl_frame)`` sends a frame."""
        self._uplink = uplink

    def detach(self) -> None:
        self._uplink = None

    @property
    def attached(self) -> bool:
        return self._uplink is not None

    def derive_link_key(self) -> bytes | None:
        """The preconfigured link key from the install code (AES-MMO via zigpy), cached."""
        if self.link_key is None:
            try:
                self.link_key = link_key_from_install_code(self.install_code)
            except SimulatorError:
                return None
        return self.link_key

    def attach_zdo(self, uplink: ZdoUplink, coordinator_eui64: Any) -> None:
        """ZDO to the coordinator (only a device that registers with the ESI talks ZDO)."""
        if self.registration is not None:
            self.registration.attach(uplink, coordinator_eui64)

    def deliver_zdo(self, cluster_id: int, payload: bytes) -> None:
        if self.registration is not None:
            self.registration.deliver(cluster_id, payload)

    def on_joined(self) -> None:
        """Called once the device is on the HAN: registration then its initial requests."""
        self.clock.call_later(self.profile.join_delay_s, self._after_join)

    def _after_join(self) -> None:
        # SL-REG step 1 waited for the join's broadcasts to die down; ESI discovery and bindings next.
        if self.registration is not None:
            self.registration.start(self._registered)
        else:
            self._registered()

    def _registered(self) -> None:
        profile = self.profile
        if profile.requests_after_join:
            if profile.has("time"):
                # SL-REG step 7: read the ESI's time before acting on absolute times.
                self.send(TIME, "read_attributes", {"attribute_ids": [0x0000, 0x0001, 0x0008, 0x0009]})
            self.initial_requests()
        if profile.time_poll_s > 0 and profile.has("time"):
            self.clock.call_later(profile.time_poll_s, self._poll_time, self._uplink)

    def _poll_time(self, uplink: Uplink | None) -> None:
        """Re-read the ESI's Time and TimeStatus (resync a drifting clock) while on the HAN. The
        poll belongs to the uplink it started on: detached or joined again (a new uplink), this
        one stops, so a device never polls twice and a fleet's devices need no slot for it."""
        if uplink is not None and self._uplink is uplink:
            self.send(TIME, "read_attributes", {"attribute_ids": [0x0000, 0x0001]})
            self.clock.call_later(self.profile.time_poll_s, self._poll_time, uplink)

    def initial_requests(self) -> None:
        """Subclasses send GetLastMessage / GetCurrentPrice / GetScheduledEvents here."""

    # ------------------------------------------------------------------ local clock
    def local_now(self) -> float:
        k = 1.0 + self.profile.quirks.clock_drift_ppm * 1e-6
        return self._clk_base_local + (self.clock.now() - self._clk_base_real) * k

    def local_utc(self) -> int:
        return to_utc(self.local_now())

    def at_local(self, when: float, cb: Callable[..., Any], *args: Any) -> Any:
        """Run ``cb`` when the device's own (possibly drifting) clock reads ``when``."""
        k = 1.0 + self.profile.quirks.clock_drift_ppm * 1e-6
        real = self._clk_base_real + (when - self._clk_base_local) / k
        return self.clock.call_at(real, cb, *args)

    def set_local_time(self, utc: int) -> None:
        self._clk_base_real = self.clock.now()
        self._clk_base_local = from_utc(utc)
        self.time_synced = True

    def random_below(self, n: int) -> int:
        return self.clock.rng.randrange(n) if n > 0 else 0

    # ------------------------------------------------------------------ load / energy
    def set_load(self, watts: float) -> None:
        now = self.clock.now()
        self._energy_wh += self._load_w * (now - self._load_since) / 3600.0
        self._load_since = now
        self._load_w = watts
        if not self.load_log or self.load_log[-1][1] != watts:
            self.load_log.append((now, watts))

    @property
    def load_w(self) -> float:
        return self._load_w

    def energy_wh(self) -> float:
        return self._energy_wh + self._load_w * (self.clock.now() - self._load_since) / 3600.0

    # ------------------------------------------------------------------ frame I/O
    def next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn

    def send(self, cluster: int, command: str, fields: dict[str, Any], *, tsn: int | None = None,
             disable_default_response: bool = False, direction: Direction | None = None) -> None:
        """Encode and send after the profile's answer delay (lost if detached by then)."""
        frame = encode_frame(cluster, command, fields, se_version=self.se_version,
                             tsn=self.next_tsn() if tsn is None else tsn,
                             disable_default_response=disable_default_response,
                             direction=direction)
        self.send_frame(cluster, frame)

    def send_frame(self, cluster: int, frame: bytes) -> None:
        self.clock.call_later(self.profile.answer_delay_s, self._emit, cluster, frame)

    def _emit(self, cluster: int, frame: bytes) -> None:
        if self._uplink is not None:
            self.frames_out += 1
            self._uplink(cluster, frame)

    def send_default_response(self, cluster: int, command_id: int, status: int, tsn: int) -> None:
        self.send(cluster, "default_response", {"command_id": command_id, "status": status},
                  tsn=tsn, disable_default_response=True)

    def deliver(self, cluster_id: int, zcl_frame: bytes) -> None:
        """A frame from the ESI. Lossy profiles drop a share of them before the radio hears it."""
        drop = self.profile.quirks.drop_ratio
        if drop and self.clock.rng.random() < drop:
            self.dropped += 1
            return
        self.frames_in += 1
        try:
            frame = decode_shared(cluster_id, zcl_frame)
        except DecodeError:
            self.undecodable += 1
            self._malformed(cluster_id, zcl_frame)
            return
        if self.frames is not None:
            self.frames.put_nowait((cluster_id, frame))
        if (self.profile.quirks.reject_trailing_fields and frame.frame_type == 1
                and self._has_newer_fields(cluster_id, frame, zcl_frame)):
            self._error(cluster_id, frame, MALFORMED_COMMAND)
            return
        if frame.command == "default_response":
            return  # never answered (ZCL)
        if frame.command == "read_attributes_response" and cluster_id == TIME:
            self._time_response(frame)
            return
        if frame.command == "read_attributes" and cluster_id == BASIC:
            self._read_basic(frame)
            return
        if not self.handle(cluster_id, frame):
            self._error(cluster_id, frame, self._unsupported(cluster_id, frame.frame_type))

    def _unsupported(self, cluster_id: int, frame_type: int) -> int:
        """ZCL: an unsupported profile-wide command is UNSUP_GENERAL_COMMAND (0x82), an
        unsupported cluster command UNSUP_CLUSTER_COMMAND (0x81), on a cluster this device does
        not run UNSUPPORTED_CLUSTER."""
        if CLUSTER_NAMES.get(cluster_id) not in self.profile.clusters:
            return UNSUPPORTED_CLUSTER
        return UNSUP_GENERAL_COMMAND if frame_type == FrameType.GLOBAL else UNSUP_CLUSTER_COMMAND

    def _malformed(self, cluster_id: int, zcl_frame: bytes) -> None:
        """A frame whose header reads but whose payload does not (e.g. an LCE shorter than 23
        bytes): ZCL error Default Response MALFORMED_COMMAND (EXG). No header: silence."""
        try:
            header = decode_header(zcl_frame)
        except DecodeError:
            return
        if header.command_id not in (GLOBAL_BY_ID if header.frame_type == FrameType.GLOBAL
                                     else _cluster_command_ids(cluster_id, header.direction)):
            # A command the codec does not know (Configure Reporting, Discover, an unknown
            # cluster command): one this device does not support, not a malformed one.
            self.send_default_response(cluster_id, header.command_id,
                                       self._unsupported(cluster_id, header.frame_type), header.tsn)
            return
        if header.direction == Direction.SERVER_TO_CLIENT and header.command_id != 0x0B:
            self.send_default_response(cluster_id, header.command_id, MALFORMED_COMMAND,
                                       header.tsn)

    def _has_newer_fields(self, cluster_id: int, frame: DecodedFrame, raw: bytes) -> bool:
        """Does the frame carry fields that SE 1.0 does not define (or unknown trailing bytes)?"""
        if frame.trailing:
            return True
        return any(k not in _v10_field_names(cluster_id, frame.command) for k in frame.fields)

    def _error(self, cluster_id: int, frame: DecodedFrame, status: int) -> None:
        """Default Response for an error: sent even when the sender disabled default responses."""
        self.send_default_response(cluster_id, frame.command_id, status, frame.tsn)

    def _ok(self, cluster_id: int, frame: DecodedFrame, status: int = SUCCESS) -> None:
        if not frame.disable_default_response:
            self.send_default_response(cluster_id, frame.command_id, status, frame.tsn)

    def _time_response(self, frame: DecodedFrame) -> None:
        values = {r["attribute_id"]: r.get("value") for r in frame.fields.get("records", [])
                  if r.get("status", 0) == 0}
        t = values.get(0x0000)
        status = values.get(0x0001, 0)
        # Only a Master or Synchronized server is a valid time source (SL-REG).
        if t is not None and t != 0xFFFFFFFF and status & 0x03:
            self.set_local_time(int(t))

    def _read_basic(self, frame: DecodedFrame) -> None:
        """The Basic server every SE device has (a coordinator's interview reads the manufacturer
        and model, as zigpy does): what the firmware profile says the device is."""
        p = self.profile
        values = {0x0000: (UINT8, ZCL_VERSION_SE1), 0x0004: (CHAR_STRING, p.vendor),
                  0x0005: (CHAR_STRING, p.model), 0x0007: (ENUM8, MAINS_SINGLE_PHASE),
                  0x4000: (CHAR_STRING, p.firmware_version)}
        records: list[dict[str, Any]] = [
            {"attribute_id": a, "status": SUCCESS, "data_type": values[a][0], "value": values[a][1]}
            if a in values else {"attribute_id": a, "status": UNSUPPORTED_ATTRIBUTE}
            for a in frame.fields["attribute_ids"]]
        self.send(BASIC, "read_attributes_response", {"records": records}, tsn=frame.tsn,
                  disable_default_response=True, direction=Direction.SERVER_TO_CLIENT)

    def handle(self, cluster_id: int, frame: DecodedFrame) -> bool:
        """Handle a decoded frame; return False if the command is not supported."""
        return False

    # ------------------------------------------------------------------ inspection
    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.eui64[::-1].hex()} {self.profile.id}>"
