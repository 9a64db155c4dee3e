"""`[pipeline]` and `[routes]` configuration sections."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationInfo, field_validator, model_validator

# The head-end transports (ams_adapters.profiles.TRANSPORTS; not imported here: the profiles pull
# in the SE codec, and every `hangw` command reads this module at start).
TRANSPORTS = ("multispeak", "cim", "binary")


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
    # How long a device write (set_enrollment_group) may wait for a dark meter, and then for the
    # device's answer; past it, an unsent write is `expired` and an unanswered one `no_answer`.
    device_write_minutes: int = Field(default=1440, ge=1, le=30 * 1440)
    # How long the devices have to acknowledge a price or block period that asked for it (Price
    # Control bit 0), counted from its delivery to the meter; then the delivery ends
    # `acknowledged`, `partly_acknowledged` or `no_acknowledgement` (gateway/pipeline/price_acks.py).
    # Some stacks never answer a block period (Silicon Labs): nothing may wait for them forever.
    price_ack_minutes: int = Field(default=60, ge=1, le=7 * 1440)
    # How long a delivery the route took (`submitted`) may wait for its delivery report. Past it the
    # delivery ends `unknown` ("no delivery report within N s"), or `expired` when its end time has
    # passed too; a report that comes later still moves it to `delivered`. Nothing stays `submitted`
    # for ever, whichever gateway instance submitted it and whether or not it is still alive.
    confirm_within_seconds: float = Field(default=3600.0, ge=1, le=7 * 86400)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    fanout_page: int = Field(default=2000, ge=10, le=50_000)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    # PostgreSQL (several instances): how long the due deliveries an instance claimed stay its own.
    # Longer than a route's submit of one batch can take; an instance killed meanwhile leaves its
    # claimed rows to the others after this long (docs/operator.md, "Running several instances").
    claim_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Dead letter: an event that failed this many times, or is older than this, is set aside
    # (listed and redeliverable via /v1/webhooks/{id}/dead-letters) and no longer holds back the
    # later events of its request.
    webhook_max_attempts: int = Field(default=15, ge=1, le=1000)
    webhook_max_age_seconds: float = Field(default=3 * 86400.0, gt=0)
    # Receivers sent to at once: each webhook has its own sender, so a slow or hanging receiver
    # holds up only its own events (for at most webhook_timeout_seconds per attempt).
    webhook_concurrency: int = Field(default=32, ge=1, le=1024)
    # ...and at most this many of one party's webhooks: a party with many hanging receivers
    # cannot take every sender.
    webhook_concurrency_per_party: int = Field(default=4, ge=1, le=1024)
    # Networks webhooks may reach besides public addresses (SSRF guard). Empty (default): loopback,
    # private (RFC 1918, ULA), link-local, unspecified, multicast and reserved addresses are refused
    # at registration and at every send. E.g. ["10.20.0.0/16"] for receivers inside your network.
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    # Several instances on one database: an event (webhooks) or operation (provisioning) taken for
    # an attempt is another instance's to try only once this lease is over (the instance that
    # took it died). Longer than one attempt can take, or a slow attempt is made twice.
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    provisioning_lease_seconds: float = Field(default=120.0, gt=0)

    @field_validator("webhook_lease_seconds")
    @classmethod
    def _lease_outlasts_attempt(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("webhook_timeout_seconds")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than webhook_timeout_seconds ({timeout:g} s): an event "
                             "is claimed for one attempt")
        return value


class RouteKind(enum.StrEnum):
    NONE = "none"  # requests are accepted and queued; nothing is dispatched
    SIMULATED = "simulated"  # an in-process simulated field (demo, trying the API)
    SIMULATED_REMOTE = "simulated_remote"  # a simulated field in another process (`hangw sim-field`)
    ADAPTERS = "adapters"  # one AMS head-end adapter per TDSP configured under [routes.tdsp.<name>]


class TdspRouteConfig(BaseModel):
    """`[routes.tdsp.<tdsp>]`: where one TDSP's head-end is and how to reach it (maps onto
    `ams_adapters.factory.AdapterConfig`). Which fields matter depends on the transport."""

    model_config = ConfigDict(extra="forbid")

    # Empty: the TDSP profile's transport (firmware_fixtures/headends/<tdsp>.toml).
    transport: str = ""
    # MultiSpeak: the head-end's base URL; the NOT_Server callback endpoint the gateway serves.
    url: str = ""
    callback_host: str = "127.0.0.1"
    callback_port: int = Field(default=0, ge=0, le=65535)
    public_callback_url: str = ""
    # Certificate and key of the callback endpoint: set both and it serves HTTPS.
    callback_cert_file: str = ""
    callback_key_file: str = ""
    # CIM: the MQTT broker; binary: the head-end.
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    topic_prefix: str = Field(default="hangw", min_length=1, max_length=200)
    # CIM: this instance's MQTT client id — fixed and different per instance, so that the broker
    # keeps its session (and what is queued for it) across restarts. Empty: a random one per start.
    client_id: str = ""
    # CIM with several instances: the MQTT 5 shared-subscription group the instances take the
    # head-end's EndDeviceEvents through (each event to one of them). Empty: every instance gets all.
    share_group: str = ""
    # CIM: how long the broker keeps this instance's session after it disconnects (MQTT 5).
    session_expiry_seconds: int = Field(default=3600, ge=0, le=0xFFFFFFFE)
    # MultiSpeak over https: the CA bundle that signs the head-end's certificate (empty: system CAs).
    ca_file: str = ""
    # Profile values to override (batch_size, rate_limit_per_s, request_timeout_s, ...).
    profile: dict[str, Any] = Field(default_factory=dict)

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str) -> str:
        if value and value not in TRANSPORTS:
            raise ValueError(f"transport: {value!r} is invalid: one of {', '.join(TRANSPORTS)} (or empty)")
        return value

    @model_validator(mode="after")
    def _callback_tls_pair(self) -> TdspRouteConfig:
        if bool(self.callback_cert_file) != bool(self.callback_key_file):
            raise ValueError("callback_cert_file / callback_key_file: set both (HTTPS callbacks) or neither")
        return self


class TdspRoutes(BaseModel):
    """`[routes.tdsp]`: one table per TDSP that has a head-end adapter. A TDSP left out has no
    route: its premises' items wait (retried) until they expire."""

    model_config = ConfigDict(extra="forbid")

    oncor: TdspRouteConfig | None = None
    centerpoint: TdspRouteConfig | None = None
    aep_central: TdspRouteConfig | None = None
    aep_north: TdspRouteConfig | None = None
    tnmp: TdspRouteConfig | None = None

    @field_validator("oncor", "centerpoint", "aep_central", "aep_north", "tnmp")
    @classmethod
    def _complete(cls, value: TdspRouteConfig | None, info: ValidationInfo) -> TdspRouteConfig | None:
        """What the chosen transport needs, and profile overrides within the profile's limits."""
        if value is None:
            return None
        assert info.field_name is not None
        from ams_adapters.profiles import HeadEndProfileError, load_profile

        try:
            profile = load_profile(info.field_name, **value.profile)
        except HeadEndProfileError as exc:
            raise ValueError(f"profile.{exc.field}: {exc.value!r} is invalid: {exc.limit}") from None
        transport = value.transport or profile.transport
        if transport == "multispeak" and not value.url.startswith(("http://", "https://")):
            raise ValueError(f"url: {value.url!r} is invalid: the MultiSpeak head-end's base URL "
                             "(http[s]://host:port) is required")
        if transport == "binary" and not value.port:
            raise ValueError(f"port: {value.port!r} is invalid: the binary head-end's TCP port (1..65535) "
                             "is required")
        if value.share_group:
            from ams_adapters.contract import ContractError
            from ams_adapters.transports.cim_mqtt import check_share_group

            if transport != "cim":
                raise ValueError(f"share_group: {value.share_group!r} is invalid: only the cim (MQTT) transport "
                                 f"has shared subscriptions, this TDSP's is {transport}")
            try:
                check_share_group(value.share_group)
            except ContractError as exc:
                raise ValueError(str(exc)) from None
            if not value.client_id:
                raise ValueError("client_id: '' is invalid: share_group needs a fixed client id per gateway "
                                 "instance (the broker keeps each instance's session by it)")
        return value

    def configured(self) -> dict[str, TdspRouteConfig]:
        return {name: cfg for name in type(self).model_fields if (cfg := getattr(self, name)) is not None}


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
    # On PostgreSQL, instances configured for the same premise's radio take turns: one owns the
    # coordinator, the others check this often whether the owner is gone (and take over), and the
    # owner checks this often that it still owns it (docs/operator.md, "Radio ownership").
    takeover_interval_seconds: float = Field(default=1.0, ge=0.1, le=60)

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
    # adapters: one table per TDSP with a head-end ([routes.tdsp.oncor], ...).
    tdsp: TdspRoutes = Field(default_factory=TdspRoutes)

    @model_validator(mode="after")
    def _adapters_need_a_tdsp(self) -> RoutesConfig:
        if self.kind is RouteKind.ADAPTERS and not self.tdsp.configured():
            raise ValueError("tdsp: no [routes.tdsp.<name>] table: kind = \"adapters\" needs at least one of "
                             f"{', '.join(TdspRoutes.model_fields)}")
        return self
