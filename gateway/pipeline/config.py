"""`[pipeline]` and `[routes]` configuration sections."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class OverlapPolicy(enum.StrEnum):
    REFUSE = "refuse"  # refuse the new event, naming the conflicting one (default)
    QUEUE_AFTER = "queue_after"  # move the new event's start to the end of the conflicting one
    SUPERSEDE_IF_HIGHER_CRITICALITY = "supersede_if_higher_criticality"


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_policy: OverlapPolicy = OverlapPolicy.REFUSE
    # Longest durations accepted (minutes). SE allows 1440 for load control (one day).
    max_text_minutes: int = Field(default=7 * 1440, ge=1, le=0xFFFE)
    max_price_minutes: int = Field(default=7 * 1440, ge=1, le=0xFFFE)
    max_load_control_minutes: int = Field(default=1440, ge=1, le=1440)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    fanout_page: int = Field(default=2000, ge=10, le=50_000)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    route_concurrency: int = Field(default=4, ge=1, le=64)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)


class RouteKind(enum.StrEnum):
    NONE = "none"  # requests are accepted and queued; nothing is dispatched
    SIMULATED = "simulated"  # an in-process simulated field (demo, trying the API)
    SIMULATED_REMOTE = "simulated_remote"  # a simulated field in another process (`hangw sim-field`)


class RadioRouteConfig(BaseModel):
    """`[routes.radio]`: a local EZSP ZigBee coordinator serving the HAN of the premise(s) named
    by `esi_ids` (the gateway is their ESI). Items for those ESI IDs go to the radio whatever
    `routes.kind` and the prefix routes say."""

    model_config = ConfigDict(extra="forbid")

    # A serial path (/dev/ttyUSB0, /dev/serial/by-id/…) or socket://host:port.
    device: str
    baudrate: int = 115200
    flow_control: Literal["none", "software", "hardware"] = "none"
    esi_ids: list[str] = Field(min_length=1)
    channel: int = Field(default=15, ge=11, le=26)
    pan_id: int | None = Field(default=None, ge=0x0001, le=0xFFFE)
    # A zigpy network backup (JSON, as `hangw radio backup` writes): restored onto a coordinator
    # that has no network (a replacement stick); written after the HAN is first formed.
    backup_file: Path | None = None
    # zigpy's own network state (device descriptors); empty: radio/zigpy.db in the data directory.
    zigpy_database: Path | None = None

    @field_validator("esi_ids")
    @classmethod
    def _esi_ids(cls, value: list[str]) -> list[str]:
        for esi_id in value:
            if not (esi_id.isdigit() and 17 <= len(esi_id) <= 22):
                raise ValueError(f"{esi_id!r} is not an ESI ID (17 to 22 digits)")
        if len(set(value)) != len(value):
            raise ValueError("ESI IDs are listed more than once")
        return value

    @model_validator(mode="after")
    def _radio_accepts(self) -> RadioRouteConfig:
        # The route's own checks (device URL, baud rate) with their field, value and limit.
        from ams_adapters.radio.config import RadioConfig

        RadioConfig(device=self.device, baudrate=self.baudrate, flow_control=self.flow, channel=self.channel,
                    pan_id=self.pan_id)
        return self

    @property
    def flow(self) -> str | None:
        return None if self.flow_control == "none" else self.flow_control


class RoutesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RouteKind = RouteKind.NONE
    # Simulated field: premises per TDSP (ESI IDs made from the TDSP prefixes).
    simulated_premises_per_tdsp: int = Field(default=8, ge=1, le=100_000)
    # Field time runs this many times faster than wall time (in-process simulated field).
    simulated_speed: float = Field(default=1.0, gt=0, le=10_000)
    # simulated_remote: where `hangw sim-field` listens.
    url: str = "http://127.0.0.1:8090"
    # A local ZigBee coordinator for some premises (additive to `kind`).
    radio: RadioRouteConfig | None = None
