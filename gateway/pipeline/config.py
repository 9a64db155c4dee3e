"""`[pipeline]` and `[routes]` configuration sections."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field


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
    # Dead letter: an event that failed this many times, or is older than this, is set aside
    # (listed and redeliverable via /v1/webhooks/{id}/dead-letters) and no longer holds back the
    # later events of its request.
    webhook_max_attempts: int = Field(default=15, ge=1, le=1000)
    webhook_max_age_seconds: float = Field(default=3 * 86400.0, gt=0)


class RouteKind(enum.StrEnum):
    NONE = "none"  # requests are accepted and queued; nothing is dispatched
    SIMULATED = "simulated"  # an in-process simulated field (demo, trying the API)
    SIMULATED_REMOTE = "simulated_remote"  # a simulated field in another process (`hangw sim-field`)


class RoutesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RouteKind = RouteKind.NONE
    # Simulated field: premises per TDSP (ESI IDs made from the TDSP prefixes).
    simulated_premises_per_tdsp: int = Field(default=8, ge=1, le=100_000)
    # Field time runs this many times faster than wall time (in-process simulated field).
    simulated_speed: float = Field(default=1.0, gt=0, le=10_000)
    # simulated_remote: where `hangw sim-field` listens.
    url: str = "http://127.0.0.1:8090"
