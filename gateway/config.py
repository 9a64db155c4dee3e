"""Configuration: a TOML file, overridden by HANGW_… environment variables, validated by pydantic.

Environment names: `HANGW_` + the dotted key in upper case with `__` between levels, e.g.
`HANGW_SERVER__PORT=8081` or `HANGW_MAIL__SMTP_PASSWORD=…`. Values are parsed as TOML values when
they parse (numbers, booleans, arrays), else taken as strings.
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from gateway.pipeline.config import PipelineConfig, RoutesConfig

ENV_PREFIX = "HANGW_"
# `hangw radio`'s own settings (docs/field-technician.md), not config keys: a technician's shell
# exporting them must not make every other hangw command refuse its config.
NOT_CONFIG_ENV = frozenset({"HANGW_RADIO_DEVICE", "HANGW_RADIO_DB", "HANGW_RADIO_ESI_ID"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerRole(enum.StrEnum):
    """What one `hangw serve` instance does (docs/operator.md, "Running several instances")."""

    API = "api"  # the HTTP API and consent pages; no background work
    WORKER = "worker"  # the background work (dispatcher, webhooks, lifecycle, provisioning); /healthz, /metrics
    ALL = "all"  # both (default; the only sensible role on SQLite)


class ServerConfig(_Section):
    role: ServerRole = ServerRole.ALL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The address customers' browsers reach the consent pages at (goes into emails).
    public_url: str = "http://127.0.0.1:8080"
    # Where problem details' `type` links point (docs/errors.md by code); default: the copy this
    # gateway serves at /docs/errors.
    problem_docs_url: str = Field(default="/docs/errors", min_length=1)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class StorageConfig(_Section):
    # Empty: SQLite file `hangw.db` in the data directory.
    url: str = ""

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class SmtpTls(enum.StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class MailConfig(_Section):
    from_address: str = "hangw@localhost"
    # Empty: no SMTP; mail goes to the mbox file `mail/outbox.mbox` in the data directory.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: SmtpTls = SmtpTls.STARTTLS
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Extra CA bundle to trust for the SMTP server's certificate (a private CA); empty: system CAs.
    smtp_ca_file: str = ""
    # Several instances on one database: a mail taken for an attempt is another instance's to try
    # only once this lease is over (the instance that took it died). Longer than an attempt can
    # take (smtp_timeout_seconds), or a slow send is sent twice.
    lease_seconds: float = Field(default=120.0, gt=0)

    @field_validator("lease_seconds")
    @classmethod
    def _lease_outlasts_attempt(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("smtp_timeout_seconds")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than smtp_timeout_seconds ({timeout:g} s): a mail is "
                             "claimed for one attempt")
        return value


class AgreementsConfig(_Section):
    invitation_days: int = Field(default=30, ge=1, le=90)
    # Reminder emails this many days before an agreement ends (one each, largest first).
    reminder_days_before: list[int] = Field(default_factory=lambda: [30, 7])
    visibility_days: int = Field(default=45, ge=0)
    lifecycle_interval_seconds: float = Field(default=60.0, gt=0)

    @field_validator("reminder_days_before")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        for day in value:
            if day < 1:
                raise ValueError(f"{day} is not a positive number of days")
        return sorted(value, reverse=True)


class UsageConfig(_Section):
    # How often the background pass fetches the usage data of the Energy Data agreements in force
    # (only the intervals the store lacks: gaps are refetched). 0 turns it off (an operator's
    # POST /v1/usage-ingestion-runs still runs one).
    ingest_interval_seconds: float = Field(default=900.0, ge=0)
    # Premises a pass reads at once (each from its own route; a head-end's rate limit and circuit
    # breaker still pace its requests). One at a time, a request/answer head-end's round trip is
    # what a pass waits on.
    ingest_concurrency: int = Field(default=8, ge=1, le=256)
    # On-demand meter reads (POST /v1/premises/{esi_id}/meter-reads) accepted per TDSP and Texas-
    # local day, across every instance (counted in the database); past it a read is refused (429).
    # The ERCOT portal's limit is 3,000 per TDSP per day (ENERGY_DATA.md §1.4).
    on_demand_reads_per_tdsp_per_day: int = Field(default=3000, ge=1)
    # A read not taken within this time (no worker running, or the instances that took it died
    # each time) fails with reason `expired`.
    on_demand_read_expiry_seconds: float = Field(default=3600.0, gt=0)
    # How long one instance holds a claimed read: a dead instance's read is taken over after it.
    on_demand_read_lease_seconds: float = Field(default=60.0, gt=0)

    # Bulk usage reports (POST /v1/usage-reports): how long a finished report's file is kept under
    # <data_dir>/usage-reports before it is deleted (the report then says `expired`).
    report_retention_days: float = Field(default=7.0, gt=0, le=366)
    # A worker's claim on the report it produces, extended after each chunk of premises: a worker
    # that dies is taken over by another once this is over.
    report_lease_seconds: float = Field(default=120.0, ge=5)
    # How often a worker looks for reports asked for on another instance (its own: at once).
    report_poll_seconds: float = Field(default=5.0, gt=0)
    # Premises per chunk: one store query (COPY on PostgreSQL), then a progress checkpoint.
    report_chunk_premises: int = Field(default=250, ge=1, le=10_000)


class EventsConfig(_Section):
    """The event log's retention (party_events; gateway/store/event_retention.py)."""

    # Events older than this many days are deleted by the sweep (0: kept forever). An event still
    # waiting in a webhook's queue or held as a dead letter is kept until it leaves the queue.
    retention_days: int = Field(default=90, ge=0, le=3650)
    # How often one instance (a lease decides which) runs the sweep.
    sweep_interval_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # Rows deleted per statement, and statements per pass: bounded transactions, and a backlog
    # (retention turned on for the first time) is worked off over several passes.
    sweep_batch_size: int = Field(default=1000, ge=1, le=100_000)
    sweep_max_batches: int = Field(default=100, ge=1, le=100_000)


class RateLimitConfig(_Section):
    # Token bucket per third party: sustained rate and burst size.
    requests_per_second: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    # Where the buckets live: None (default) — in the database on PostgreSQL (every instance spends
    # from one bucket per party), in this process on SQLite; true/false force one or the other.
    shared: bool | None = None


class LogConfig(_Section):
    level: str = "INFO"
    json_lines: bool = True

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()


class SecurityConfig(_Section):
    # Fernet key (urlsafe base64 of 32 bytes, `hangw admin device-key` makes one) that encrypts
    # HAN devices' link keys at rest. Prefer HANGW_SECURITY__DEVICE_KEY_SECRET or the file below
    # to writing it into the config file. Without a key, provisioning is refused.
    device_key_secret: str = ""
    # A file holding the key (one line); used when device_key_secret is empty.
    device_key_file: str = ""


_TOPIC_LEVEL_FORBIDDEN = "+#"


class MqttApiConfig(_Section):
    """The MQTT API for third parties (docs/operator.md, "The MQTT API"): the gateway's own
    client on the operator's broker, which administers Mosquitto's dynamic-security plugin."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    # The gateway's own dynsec client: it needs the dynsec admin role (`mosquitto_ctrl dynsec init`
    # makes one) to create the parties' clients and roles. Prefer HANGW_MQTT_API__ADMIN_PASSWORD.
    admin_username: str = Field(default="", max_length=200)
    admin_password: str = Field(default="", max_length=1000, validate_default=True)
    # Every party's topics live under "<topic_root>/parties/<party id>/".
    topic_root: str = Field(default="hangw/v1", min_length=1, max_length=200)
    # The persistent session's client id (one per gateway instance; instances share the requests
    # through the MQTT 5 shared subscription `$share/<share_group>/…`).
    client_id: str = Field(default="hangw-gateway", min_length=1, max_length=128)
    share_group: str = Field(default="hangw", min_length=1, max_length=200)
    session_expiry_seconds: int = Field(default=3600, ge=0, le=0xFFFFFFFE)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    @field_validator("topic_root")
    @classmethod
    def _topic_root(cls, value: str) -> str:
        if any(c in value for c in _TOPIC_LEVEL_FORBIDDEN) or value.startswith(("$", "/")) or value.endswith("/"):
            raise ValueError("a topic without wildcards (+, #), not starting with $ or /, not ending with /")
        return value

    @field_validator("share_group")
    @classmethod
    def _share_group(cls, value: str) -> str:
        if any(c in value for c in "/+#"):
            raise ValueError("an MQTT 5 ShareName: none of '/', '+' or '#'")
        return value

    @field_validator("admin_password")
    @classmethod
    def _admin_given(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("enabled") and not (info.data.get("admin_username") and value):
            raise ValueError("enabled = true needs admin_username and admin_password (the gateway's dynsec client)")
        return value


class PagesConfig(_Section):
    """The server-rendered pages: the customer's page and the third parties' dashboard."""

    # Signs and encrypts the page session cookie and the customer's emailed links (HKDF derives one
    # key per use). At least 32 characters; prefer HANGW_PAGES__SESSION_SECRET. Empty: a random
    # secret kept in `pages-secret` in the data directory (made at first start) — instances that
    # share a database must be given the same secret, or one instance's links fail on another.
    session_secret: str = ""
    # A dashboard sign-in (and a form's CSRF token) lasts this long.
    session_hours: float = Field(default=8.0, gt=0, le=24 * 7)
    # The customer's "all my agreements" link in every agreement email works this many days.
    customer_link_days: int = Field(default=30, ge=1, le=365)
    # A third party's one-time dashboard sign-in link (mailed to its contact address) works this long.
    sign_in_link_minutes: int = Field(default=15, ge=1, le=1440)

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError(f"is {len(value)} characters; at least 32 (or empty for a generated one)")
        return value


class GatewayConfig(_Section):
    data_dir: Path = Path("./hangw-data")
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    mail: MailConfig = Field(default_factory=MailConfig)
    agreements: AgreementsConfig = Field(default_factory=AgreementsConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    routes: RoutesConfig = Field(default_factory=RoutesConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    mqtt_api: MqttApiConfig = Field(default_factory=MqttApiConfig)
    pages: PagesConfig = Field(default_factory=PagesConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'hangw.db'}"

    @property
    def mbox_path(self) -> Path:
        return self.data_dir / "mail" / "outbox.mbox"


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot run; `problems` names each bad key and value."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        super().__init__(
            f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = problems


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG_ENV:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# Keys an older config may still carry, with what became of them (a bare "unknown key" would not say).
REMOVED_KEYS = {
    "pipeline.route_concurrency": "removed: each route batches and paces what it sends to its head-end "
                                  "(the profile's batch_size and rate_limit_per_s; docs/pipeline.md)",
}


def parse_config(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: str = "config"
) -> GatewayConfig:
    merged = _merge(dict(data), _env_overrides(os.environ if env is None else env))
    try:
        return GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                ".".join(str(p) for p in err["loc"]),
                _lookup(merged, tuple(err["loc"])),
                REMOVED_KEYS.get(".".join(str(p) for p in err["loc"]), "unknown key")
                if err["type"] == "extra_forbidden" else err["msg"],
            )
            for err in exc.errors()
        ]
        raise ConfigError(source, problems) from None


def load_config(path: Path | None, *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read `path` (None: defaults only) and apply HANGW_… overrides from `env` (os.environ)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(str(path), [ConfigProblem("(file)", str(path), str(exc))]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                str(path), [ConfigProblem("(syntax)", str(path), str(exc))]
            ) from None
    return parse_config(data, env=env, source=str(path) if path else "defaults")
