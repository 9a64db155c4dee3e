"""Configuration of the local-radio route, validated with typed errors naming field, value, limit."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

FLOW_CONTROLS = (None, "software", "hardware")
BAUD_RATES = (57600, 115200, 230400, 460800, 921600)
ZIGBEE_CHANNELS = range(11, 27)
SE_ENDPOINT_DEFAULT = 10


class RadioConfigError(ValueError):
    def __init__(self, field: str, value: object, limit: str) -> None:
        super().__init__(f"radio config {field}={value!r}: {limit}")
        self.field = field
        self.value = value
        self.limit = limit


@dataclasses.dataclass(frozen=True)
class RadioConfig:
    """Where the coordinator is and how the HAN is formed.

    `device`: a serial path (/dev/ttyUSB0, /dev/serial/by-id/…) or socket://host:port for a
    network coordinator. `database_path`: zigpy's SQLite file keeping devices and network
    backups across restarts (None keeps them in memory only).
    """

    device: str
    baudrate: int = 115200
    flow_control: str | None = None
    channel: int = 15
    pan_id: int | None = None
    extended_pan_id: str | None = None
    se_endpoint: int = SE_ENDPOINT_DEFAULT
    database_path: str | None = None
    use_thread: bool = True
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.device:
            raise RadioConfigError("device", self.device, "a serial path or socket://host:port")
        url = urllib.parse.urlparse(self.device)
        if url.scheme in ("socket", "tcp") and (not url.hostname or not url.port):
            raise RadioConfigError("device", self.device, "socket://host:port needs host and port")
        if self.baudrate not in BAUD_RATES:
            raise RadioConfigError("baudrate", self.baudrate, f"one of {BAUD_RATES}")
        if self.flow_control not in FLOW_CONTROLS:
            raise RadioConfigError("flow_control", self.flow_control, "software, hardware or none")
        if self.channel not in ZIGBEE_CHANNELS:
            raise RadioConfigError("channel", self.channel, "11 to 26")
        if self.pan_id is not None and not 0x0001 <= self.pan_id <= 0xFFFE:
            raise RadioConfigError("pan_id", self.pan_id, "0x0001 to 0xFFFE")
        if not 1 <= self.se_endpoint <= 240:
            raise RadioConfigError("se_endpoint", self.se_endpoint, "1 to 240")
        if self.se_endpoint in (1, 2, 242):
            raise RadioConfigError("se_endpoint", self.se_endpoint, "1, 2 and 242 are bellows'")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise RadioConfigError("reconnect_min_s", self.reconnect_min_s, f"between 0 and {self.reconnect_max_s}")

    def zigpy_config(self) -> dict[str, Any]:
        """The config dict for bellows' ControllerApplication."""
        network: dict[str, Any] = {"channel": self.channel, "channels": [self.channel]}
        if self.pan_id is not None:
            network["pan_id"] = self.pan_id
        if self.extended_pan_id is not None:
            network["extended_pan_id"] = self.extended_pan_id
        return {
            "device": {
                "path": self.device,
                "baudrate": self.baudrate,
                "flow_control": self.flow_control,
            },
            "database_path": self.database_path,
            "network": network,
            # OTA fetches remote image indexes and is sent on profile 0x0104: not for SE devices.
            "ota": {"enabled": False},
            "backup_enabled": False,
            "topology_scan_enabled": False,
            "use_thread": self.use_thread,
            "additional_endpoints": [
                {
                    "endpoint": self.se_endpoint,
                    "profile": 0x0109,
                    "device_type": 0x0500,  # ESI
                    "device_version": 0,
                    # The ESI serves Time, Price, DRLC, Metering and Messaging (SE 1.x annex).
                    "input_clusters": [0x000A, 0x0700, 0x0701, 0x0702, 0x0703],
                    "output_clusters": [],
                }
            ],
        }
