"""The schema, declared once for SQLite and PostgreSQL.

The migrations in `migrations/versions` must build exactly this (tests compare them with Alembic's
autogenerate diff, from every earlier revision).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both back-ends.

    SQLite has no time zones: it keeps naive UTC; PostgreSQL keeps timestamptz.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC datetimes only")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Event ids (party_events.id): bigint on PostgreSQL (one row per event of every party, for years);
# SQLite's INTEGER PRIMARY KEY is already 64-bit (and only it is the rowid alias).
EventId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

parties = sa.Table(
    "parties",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("duns", sa.String(9), nullable=False, unique=True),
    sa.Column("contact_email", sa.String(320), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

technicians = sa.Table(
    "technicians",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True),
    sa.Column("technician_id", sa.Integer, sa.ForeignKey("technicians.id"), nullable=True),
    sa.Column("label", sa.String(200), nullable=False),
    # SHA-256 of the bearer token: tokens carry 256 random bits, so a fast hash is the standard
    # choice (a slow KDF protects low-entropy passwords, which these are not).
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_prefix", sa.String(12), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

premises = sa.Table(
    "premises",
    metadata,
    sa.Column("esi_id", sa.String(22), primary_key=True),
    sa.Column("tdsp", sa.String(30), nullable=False),
    sa.Column("meter_number", sa.String(40), nullable=False),
    sa.Column("customer_email", sa.String(320), nullable=True),
    sa.Column("rep", sa.String(200), nullable=True),
    sa.Column("premise_class", sa.String(30), nullable=False),
    sa.Column("se_version", sa.String(5), nullable=True),
    sa.Column("enhanced_meter", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

technician_assignments = sa.Table(
    "technician_assignments",
    metadata,
    sa.Column(
        "technician_id", sa.Integer, sa.ForeignKey("technicians.id"), primary_key=True
    ),
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), primary_key=True),
)

han_devices = sa.Table(
    "han_devices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), nullable=False),
    sa.Column("eui64", sa.String(16), nullable=False),
    sa.Column("device_type", sa.String(40), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("esi_id", "eui64", name="uq_han_devices_esi_id_eui64"),
    # Provisioning (0007): the derived link key, Fernet-encrypted ([security] device_key_secret);
    # the install code itself is never stored.
    sa.Column("link_key_encrypted", sa.String(200), nullable=True),
    sa.Column("join_window_ends_at", UtcDateTime, nullable=True),
    sa.Column("last_reason", sa.String(300), nullable=True),
)

agreements = sa.Table(
    "agreements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("scopes", sa.String(100), nullable=False),  # comma-separated Scope values
    sa.Column("customer_email", sa.String(320), nullable=False),
    sa.Column("duration_months", sa.Integer, nullable=False),
    sa.Column("state", sa.String(40), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("invitation_expires_at", UtcDateTime, nullable=False),
    sa.Column("resend_count", sa.Integer, nullable=False),
    # SHA-256 of the single-use consent link token; NULL once used.
    sa.Column("consent_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("consent_expires_at", UtcDateTime, nullable=True),
    sa.Column("terminate_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("accepted_at", UtcDateTime, nullable=True),
    sa.Column("starts_at", UtcDateTime, nullable=True),
    sa.Column("ends_at", UtcDateTime, nullable=True),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("end_reason", sa.String(200), nullable=True),
    sa.Column("reminders_sent", sa.Integer, nullable=False),
    # months asked for by a pending renewal (the customer has not answered yet)
    sa.Column("renewal_months", sa.Integer, nullable=True),
    # Energy Data agreements only (migration 0020): DataMode, UsageInterval, a one-time period.
    sa.Column("data_mode", sa.String(20), nullable=True),
    sa.Column("data_interval", sa.String(10), nullable=True),
    sa.Column("data_from", UtcDateTime, nullable=True),
    sa.Column("data_to", UtcDateTime, nullable=True),
    # The customer's language for the consent pages and every agreement email (migration 0025):
    # "en" or "es" (SMT's customerLanguagePreference; Texas customers may choose Spanish).
    sa.Column("customer_language", sa.String(2), nullable=False, server_default="en"),
)

agreement_premises = sa.Table(
    "agreement_premises",
    metadata,
    sa.Column("agreement_id", sa.Integer, sa.ForeignKey("agreements.id"), primary_key=True),
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), primary_key=True),
    sa.Column("meter_number", sa.String(40), nullable=False),
    # The fan-out keyset walks this index in ESI ID order (and reads the agreement id from it).
    sa.Index("ix_agreement_premises_esi_id_agreement_id", "esi_id", "agreement_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("principal_role", sa.String(20), nullable=False),
    sa.Column("principal_id", sa.Integer, nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("esi_id", sa.String(22), nullable=False, index=True),
    sa.Column("device_eui64", sa.String(16), nullable=True),
    sa.Column("agreement_id", sa.Integer, nullable=True),
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    # Written in the transaction of the action it guards (migration 0011). Nothing here reads back
    # as the answer without the caller's token and key: see gateway/api/idempotency.py.
    sa.Column("scope", sa.String(64), primary_key=True),  # the caller's credential ("credential:<id>")
    sa.Column("key_hash", sa.String(64), primary_key=True),  # SHA-256 of the Idempotency-Key
    sa.Column("operation", sa.String(200), nullable=False),  # "POST /v1/…" (the path template)
    sa.Column("request_mac", sa.String(64), nullable=False),  # HMAC of path, query and body
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("sealed_body", sa.LargeBinary, nullable=False),  # AES-GCM: nonce + ciphertext
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
)

rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
    # Each third party's request bucket shared by every gateway instance on one PostgreSQL (migration
    # 0016; gateway/store/rate_limits.py): GCRA's theoretical arrival time, in seconds since the epoch
    # by the database's clock, updated by one atomic upsert per request.
    sa.Column("party_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tat", sa.Float(precision=53), nullable=False),
    sa.Column("allowed", sa.Boolean, nullable=False),  # whether the last request was let through
)

mqtt_credentials = sa.Table(
    "mqtt_credentials",
    metadata,
    # A third party's username and password on the operator's MQTT broker (migration 0019;
    # gateway/store/mqtt_credentials.py). The password is shown once; only its SHA-256 is kept (256
    # random bits, as API tokens: a fast hash suffices); the broker keeps its own salted hash (dynsec).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

mqtt_event_cursors = sa.Table(
    "mqtt_event_cursors",
    metadata,
    # Per party: the last event (party_events.id) the broker acknowledged on its MQTT events topics, and
    # the claim of the instance publishing them now (migration 0019; gateway/store/mqtt_event_cursors.py;
    # the lease and fencing of gateway/store/row_claims.py).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, unique=True),
    sa.Column("last_event_id", EventId, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),  # the lease's end; NULL: never claimed
    sa.Column("attempts", sa.Integer, nullable=False),  # claims so far: the fencing token
    sa.Column("holder", sa.String(32), nullable=True),  # the instance holding the claim (diagnostics)
)

mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    # Emptied once sent: bodies carry single-use consent links.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # NULL once sent or given up (dead letter: attempts at the limit, sent_at NULL).
    sa.Column("next_attempt_at", UtcDateTime, nullable=True, index=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
)

# -- the HAN request pipeline (issue 5) --------------------------------------------------------

han_requests = sa.Table(
    "han_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # NULL: the operator's own request (a device write; migration 0014).
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True, index=True),
    sa.Column("kind", sa.String(30), nullable=False),
    # The validated request as the caller gave it (JSON), and the SE id the gateway allocated
    # (message id for texts, issuer event id for prices and load control).
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("se_id", sa.BigInteger, nullable=True),
    # The SE command shared by the request's deliveries: {"cluster_id", "command", "fields"}; a
    # delivery's own fields are NULL when it uses these. No frame: the routes that send frames
    # encode the fields (ams_adapters/se_frames.py); older rows may also hold "frames".
    sa.Column("command", sa.Text, nullable=True),
    sa.Column("target_all", sa.Boolean, nullable=False),
    # Fan-out progress: the last ESI ID expanded (keyset cursor), NULL once every page is done.
    sa.Column("fanout_after", sa.String(22), nullable=True),
    sa.Column("targeted", sa.Integer, nullable=False),
    sa.Column("excluded", sa.Text, nullable=False),  # JSON list of {"esi_id", "reason"}
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("cancels_request_id", sa.Integer, nullable=True),
    # A companion request (a price's PublishBlockPeriod) names its price request (migration 0009).
    sa.Column("part_of_request_id", sa.Integer, nullable=True),
    sa.Column("starts_at", UtcDateTime, nullable=True),
    sa.Column("ends_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # GET /v1/han-requests: one party's requests in id order (migration 0018).
    sa.Index("ix_han_requests_party_id_id", "party_id", "id"),
)

# One row per (request, premise, SE event): the delivery (an item of the delivery queue). Its id is
# the route's idempotency key (outbound_id "hgw-<id>"); `next_attempt_at` is set while the item
# waits to be submitted. Every
# request has one row per premise (carrying the request's SE id) except a cancel-all, which has
# one per cancelled event (carrying that event's issuer id; migration 0013).
han_deliveries = sa.Table(
    "han_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # No foreign key to han_requests since migration 0017: PostgreSQL checked it by a trigger per
    # inserted row (a lookup and a share lock of the request row), 15-25 % of a fan-out page's
    # INSERT; every row is written with its request, in the request's or a later transaction of
    # the same request, and requests are never deleted.
    sa.Column("request_id", sa.Integer, nullable=False),
    sa.Column("party_id", sa.Integer, nullable=True),  # NULL: the operator's (migration 0014)
    sa.Column("esi_id", sa.String(22), nullable=False),
    sa.Column("agreement_id", sa.Integer, nullable=True),
    sa.Column("se_id", sa.BigInteger, nullable=True),
    sa.Column("se_version", sa.String(5), nullable=False),
    sa.Column("cluster_id", sa.Integer, nullable=False),
    sa.Column("command", sa.String(40), nullable=False),
    sa.Column("fields", sa.Text, nullable=True),  # JSON; NULL: the request's
    sa.Column("frame", sa.String(600), nullable=True),  # hex; written by earlier versions only
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("reference", sa.String(100), nullable=True),
    sa.Column("reason", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # A cancel's item: the request whose SE message or event it cancels.
    sa.Column("cancels_request_id", sa.Integer, nullable=True),
    # The one device the item is for (a device write, 16 hex digits); NULL: the premise's capable
    # devices (migration 0014).
    sa.Column("target_eui64", sa.String(16), nullable=True),
    # A price or block period that asked its devices to acknowledge, delivered to the meter: by
    # when they must have (NULL: nothing awaited, or already decided; migration 0015).
    sa.Column("ack_due_at", UtcDateTime, nullable=True),
    # When a route took the item (it became `submitted`; migration 0017). Its history's
    # `submitted` entry and the frame log's `out` record are read from this row (its command,
    # premise, request and agreement), not written as rows of their own: at a million premises a
    # page, two inserts per premise less (docs/state-scale.md). NULL: not handed yet, or handed
    # before 0017 (those have a han_transitions row and a han_frame_log row instead).
    sa.Column("submitted_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("request_id", "esi_id", "se_id", name="uq_han_deliveries_request_esi_se"),
    sa.Index("ix_han_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_han_deliveries_esi_se", "esi_id", "se_id"),
    # Device writes only (a handful beside millions of fan-out rows): their answers and their
    # unanswered ends are found without reading the rest (migration 0014).
    sa.Index("ix_han_deliveries_target_eui64", "target_eui64",
             sqlite_where=sa.text("target_eui64 IS NOT NULL"),
             postgresql_where=sa.text("target_eui64 IS NOT NULL")),
    # Deliveries awaiting their devices' acknowledgements only (migration 0015): the once-a-second
    # sweep finds those past their time without reading the delivered rows of every fan-out.
    sa.Index("ix_han_deliveries_ack_due_at", "ack_due_at",
             sqlite_where=sa.text("ack_due_at IS NOT NULL"),
             postgresql_where=sa.text("ack_due_at IS NOT NULL")),
    # Queued deliveries by premise (migration 0022): a claim takes a premise's delivery only when
    # no earlier one of that premise is still queued (deliveries.read_due), one probe per row.
    sa.Index("ix_han_deliveries_queued_esi", "esi_id", "id",
             sqlite_where=sa.text("state = 'queued'"), postgresql_where=sa.text("state = 'queued'")),
)

han_device_states = sa.Table(
    "han_device_states",
    metadata,
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("han_deliveries.id"), primary_key=True),
    sa.Column("eui64", sa.String(23), primary_key=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("detail", sa.String(300), nullable=True),
)

# Every state a delivery or one of its devices went through, with its time.
han_transitions = sa.Table(
    "han_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, nullable=False, index=True),
    sa.Column("eui64", sa.String(23), nullable=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("detail", sa.String(300), nullable=True),
)

# Gateway-wide counters behind SE message ids and issuer event ids: one counter for every meter,
# so ids never collide across providers on a meter and always increase.
se_id_counters = sa.Table(
    "se_id_counters",
    metadata,
    sa.Column("name", sa.String(30), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# Load-control events in force per premise, for arbitration between providers.
lce_events = sa.Table(
    "lce_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("esi_id", sa.String(22), nullable=False, index=True),
    sa.Column("issuer_event_id", sa.BigInteger, nullable=False),
    sa.Column("party_id", sa.Integer, nullable=False),
    sa.Column("request_id", sa.Integer, nullable=False),
    sa.Column("device_class", sa.Integer, nullable=False),
    sa.Column("criticality", sa.Integer, nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # active, cancelled, superseded
)

# What was handed to a route for a home (out: command, frame NULL, the fields are the request's:
# docs/pipeline.md "Audit") and every answer (in: its frame, hex), with request and authorization
# (append-only).
han_frame_log = sa.Table(
    "han_frame_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),  # out / in
    sa.Column("esi_id", sa.String(22), nullable=False, index=True),
    sa.Column("eui64", sa.String(23), nullable=True),
    sa.Column("request_id", sa.Integer, nullable=True),
    sa.Column("delivery_id", sa.Integer, nullable=True),
    sa.Column("agreement_id", sa.Integer, nullable=True),
    sa.Column("cluster_id", sa.Integer, nullable=False),
    sa.Column("command", sa.String(40), nullable=False),
    sa.Column("frame", sa.String(600), nullable=True),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),  # sealed (gateway/device_keys.py Sealer)
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
    sa.Column("request_id", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # NULL once delivered.
    sa.Column("next_attempt_at", UtcDateTime, nullable=True, index=True),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    # Dead letter (migration 0009): attempts or age used up; not sent again until redelivered.
    sa.Column("dead_at", UtcDateTime, nullable=True),
    # Migration 0018: the event this row sends (its body is party_events.body; rows queued before
    # 0018 have none and carry their own `body`), and the ordering key (events of one subject to
    # one webhook go in order). request_id is kept for the dead-letter listing; 0 when the event
    # is not a request's.
    sa.Column("event_id", EventId, nullable=True),
    sa.Column("subject", sa.String(100), nullable=True),
    sa.Index("ix_webhook_outbox_dead", "webhook_id", "dead_at"),
)

# ---------------------------------------------------------------- the event log (issue 15, 0018)

# Every event of a third party, once (gateway/store/events.py): the id is the event id on every
# channel (webhook-id, MQTT, GET /v1/events); `body` is the JSON exactly as sent.
party_events = sa.Table(
    "party_events",
    metadata,
    sa.Column("id", EventId, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_party_events_party_id_id", "party_id", "id"),
    sa.Index("ix_party_events_created_at", "created_at"),  # the retention sweep (0025)
)

# ---------------------------------------------------------------- HAN provisioning (issue 6, 0007)

# Provisioning status history: one row per state a device (or, eui64 NULL, the premise's HAN) reached.
han_device_events = sa.Table(
    "han_device_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), nullable=False),
    sa.Column("eui64", sa.String(16), nullable=True),
    sa.Column("operation_id", sa.Integer, nullable=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("reason", sa.String(40), nullable=True),
    sa.Column("detail", sa.String(300), nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_han_device_events_esi_id_eui64", "esi_id", "eui64"),
)

# The provisioning outbox: operations stored before they are sent to the premise's route (a crash
# loses none; the route dedups by request id `hgw-prov-<id>`), retried until sent or expired.
han_provisioning_ops = sa.Table(
    "han_provisioning_ops",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), nullable=False),
    sa.Column("eui64", sa.String(16), nullable=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("join_window_s", sa.Integer, nullable=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True),
    # queued -> submitted -> done | failed
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("reason", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_han_provisioning_ops_state_next_attempt_at", "state", "next_attempt_at"),
)

# --- Local radio route (issue 7): what the coordinator's route must remember across restarts ----

# Outbound ids the radio route accepted, with what became of them: a gateway killed mid-send does
# not send the same text or event again after restart (the outcome stays "sending" = unknown).
radio_outbound = sa.Table(
    "radio_outbound",
    metadata,
    sa.Column("outbound_id", sa.String(100), primary_key=True),
    sa.Column("esi_id", sa.String(22), nullable=False, index=True),
    sa.Column("eui64", sa.String(16), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# What the radio knows of a device beyond han_devices' columns: its short (NWK) address. (The
# reason of its last state change — a failed join, a leave, a decommission — is last_reason.)
radio_devices = sa.Table(
    "radio_devices",
    metadata,
    sa.Column("esi_id", sa.String(22), sa.ForeignKey("premises.esi_id"), primary_key=True),
    sa.Column("eui64", sa.String(16), primary_key=True),
    sa.Column("nwk", sa.Integer, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# -- fan-out at scale / incremental withdrawal sweep (issue 5 part B) ----------------------------
# The dispatcher's withdrawal sweep reads only agreements that ended since its previous sweep
# (migration 0010): terminated ones by `updated_at`, ones that ran out by `ends_at`.
sa.Index("ix_agreements_updated_at", agreements.c.updated_at)
sa.Index("ix_agreements_ends_at", agreements.c.ends_at)
# Each dispatcher pass looks for fan-outs still expanding (fanout_after not NULL), oldest first.
sa.Index("ix_han_requests_expanding", han_requests.c.id, sqlite_where=sa.text("fanout_after IS NOT NULL"),
         postgresql_where=sa.text("fanout_after IS NOT NULL"))


usage_reads = sa.Table(
    "usage_reads",
    metadata,
    # One row per premise, channel and interval: a re-sent read replaces the stored one (upsert on
    # the primary key), so a head-end that sends a day twice, or revises an estimate, leaves one row.
    # No foreign key to premises: ingestion writes tens of thousands of rows per premise, and the
    # reads of a removed premise are harmless (no agreement can cover it any more).
    sa.Column("esi_id", sa.String(22), primary_key=True),
    sa.Column("channel", sa.String(12), primary_key=True),  # consumption | generation
    sa.Column("interval_start", UtcDateTime, primary_key=True),
    sa.Column("length_s", sa.Integer, nullable=False),  # 900 for 15-minute intervals
    sa.Column("value_wh", sa.Integer, nullable=False),
    sa.Column("quality", sa.String(10), nullable=False),  # actual | estimated | missing
    sa.Column("source", sa.String(40), nullable=False),  # the route that delivered it
    sa.Column("received_at", UtcDateTime, nullable=False),
)


# -- on-demand meter reads (issue 16, migration 0024) ----------------------------------------------
meter_reads = sa.Table(
    "meter_reads",
    metadata,
    # A queue row (gateway/store/row_claims.py): pending while `next_attempt_at` is set (due then,
    # or leased until then), done (completed | failed) once it is NULL.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=True),  # NULL: an operator's
    sa.Column("agreement_id", sa.Integer, nullable=True),  # the agreement that allowed it
    sa.Column("esi_id", sa.String(22), nullable=False),
    sa.Column("tdsp", sa.String(30), nullable=False),  # whose daily cap it counts against
    sa.Column("state", sa.String(10), nullable=False),  # pending | completed | failed
    sa.Column("reason", sa.String(20), nullable=True),  # failed: unreachable | not_supported | expired
    sa.Column("detail", sa.String(500), nullable=True),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),  # not read by then: failed, expired
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("read_at", UtcDateTime, nullable=True),
    sa.Column("delivered_wh", sa.BigInteger, nullable=True),
    sa.Column("received_wh", sa.BigInteger, nullable=True),
    sa.Column("demand_w", sa.Integer, nullable=True),
)
sa.Index("ix_meter_reads_due", meter_reads.c.next_attempt_at,
         sqlite_where=sa.text("next_attempt_at IS NOT NULL"), postgresql_where=sa.text("next_attempt_at IS NOT NULL"))

meter_read_quota = sa.Table(
    "meter_read_quota",
    metadata,
    # Reads accepted per TDSP and Texas-local day (YYYY-MM-DD): the cap is checked and counted in
    # one upsert, in the transaction that stores the read.
    sa.Column("tdsp", sa.String(30), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
)

# ---------------------------------------------------------------- pages and retention (issue 15, 0025)

# A third party's one-time dashboard sign-in link, mailed to its contact address: only the SHA-256
# of the link's token is kept (256 random bits: a fast hash suffices, as for API tokens). Single
# use (`used_at`), short-lived (`expires_at`, `[pages] sign_in_link_minutes`).
page_sign_in_links = sa.Table(
    "page_sign_in_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
)

# Per party: the highest event id the retention sweep deleted (gateway/store/event_retention.py).
# `GET /v1/events?after=N` with N below it would skip events the client never read: a 410.
party_event_horizons = sa.Table(
    "party_event_horizons",
    metadata,
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), primary_key=True),
    sa.Column("swept_through_id", EventId, nullable=False),
)

# Leases of periodic jobs that one instance at a time runs (the event retention sweep): the holder
# renews `lease_until` while it works; another instance takes the job once the lease is over.
job_leases = sa.Table(
    "job_leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("lease_until", UtcDateTime, nullable=False),
)

usage_reports = sa.Table(
    "usage_reports",
    metadata,
    # A bulk usage report (issue 16, "Bulk"): asked for by a party, produced in the background by a
    # worker that claims it with a lease (next_attempt_at; attempts is the fencing token, see
    # gateway/store/row_claims.py), written to a file under data_dir, deleted after the retention.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
    sa.Column("state", sa.String(10), nullable=False),  # queued | running | done | failed | expired
    sa.Column("format", sa.String(10), nullable=False),  # csv | espi (Green Button)
    sa.Column("interval", sa.String(8), nullable=False),  # 15min | daily | monthly
    sa.Column("period_start", UtcDateTime, nullable=False),
    sa.Column("period_end", UtcDateTime, nullable=False),
    # JSON [[esi_id, agreement_id], ...] in esi_id order: each premise with the agreement that let
    # it in at request time (re-read while producing: its data stops where that agreement ends).
    sa.Column("premises", sa.Text, nullable=False),
    sa.Column("premises_total", sa.Integer, nullable=False),
    sa.Column("premises_done", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),  # due / lease end; NULL when finished
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("file_name", sa.String(200), nullable=True),  # under data_dir/usage-reports
    sa.Column("file_bytes", sa.BigInteger, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),  # the file is deleted then
    sa.Column("error", sa.String(500), nullable=True),
    sa.Index("ix_usage_reports_due", "next_attempt_at", sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
             postgresql_where=sa.text("next_attempt_at IS NOT NULL")),
    sa.Index("ix_usage_reports_expires_at", "expires_at", sqlite_where=sa.text("state = 'done'"),
             postgresql_where=sa.text("state = 'done'")),
)
