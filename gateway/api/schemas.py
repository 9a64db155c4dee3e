"""Request and response bodies of the REST API (pydantic; they make the OpenAPI document)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue
from zigpy.util import QR_CODE_FORMATS

from ams_adapters.contract import OperationKind as RequestKind
from gateway.agreements import EMAIL_RE, MAX_PREMISES_PER_INVITATION
from gateway.authz import Decision
from gateway.domain.esi_id import ESI_ID_PATTERN
from gateway.domain.model import (
    DURATIONS_MONTHS,
    LARGE_COMMERCIAL_DURATIONS_MONTHS,
    Action,
    AgreementKind,
    AgreementState,
    DataMode,
    DeviceStatus,
    HanRequestState,
    PartyStatus,
    PremiseClass,
    Role,
    Scope,
    UsageInterval,
)
from gateway.domain.records import (
    Agreement,
    AuditEntry,
    Credential,
    EnergyDataTerms,
    HanDevice,
    Party,
    Premise,
    Technician,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartyIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    duns: Annotated[str, Field(pattern=r"^[0-9]{9}$", description="9-digit DUNS number")]
    contact_email: Annotated[str, Field(min_length=3, max_length=320)]


class PartyPatch(_In):
    status: PartyStatus


class PartyOut(BaseModel):
    id: int
    name: str
    duns: str
    contact_email: str
    status: PartyStatus
    created_at: datetime

    @classmethod
    def of(cls, p: Party) -> PartyOut:
        return cls(id=p.id, name=p.name, duns=p.duns, contact_email=p.contact_email,
                   status=p.status, created_at=p.created_at)


class TechnicianIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[str, Field(min_length=3, max_length=320)]


class TechnicianOut(BaseModel):
    id: int
    name: str
    email: str
    created_at: datetime

    @classmethod
    def of(cls, t: Technician) -> TechnicianOut:
        return cls(id=t.id, name=t.name, email=t.email, created_at=t.created_at)


class AssignmentIn(_In):
    esi_id: str = Field(json_schema_extra={"pattern": ESI_ID_PATTERN})


class CredentialIn(_In):
    label: Annotated[str, Field(min_length=1, max_length=200)] = "api"


class CredentialOut(BaseModel):
    id: int
    role: Role
    party_id: int | None
    technician_id: int | None
    label: str
    token_prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, c: Credential) -> CredentialOut:
        return cls(id=c.id, role=c.role, party_id=c.party_id, technician_id=c.technician_id,
                   label=c.label, token_prefix=c.token_prefix, created_at=c.created_at,
                   revoked_at=c.revoked_at)


class IssuedCredential(BaseModel):
    credential: CredentialOut
    token: str = Field(description="The bearer token. Shown once; only its hash is stored.")


class PremiseIn(_In):
    esi_id: str = Field(json_schema_extra={"pattern": ESI_ID_PATTERN},
                        description="the TDSP is derived from its prefix")
    meter_number: Annotated[str, Field(min_length=1, max_length=40)]
    customer_email: str | None = None
    rep: str | None = None
    premise_class: PremiseClass = PremiseClass.RESIDENTIAL
    se_version: Annotated[str | None, Field(pattern=r"^1\.[012]$")] = None
    enhanced_meter: bool = False


class PremiseOut(BaseModel):
    esi_id: str
    tdsp: str
    meter_number: str
    customer_email: str | None = Field(None, description="operators only")
    rep: str | None
    premise_class: PremiseClass
    se_version: str | None
    enhanced_meter: bool
    status: str
    updated_at: datetime

    @classmethod
    def of(cls, p: Premise, *, operator: bool) -> PremiseOut:
        return cls(esi_id=p.esi_id, tdsp=p.tdsp, meter_number=p.meter_number,
                   customer_email=p.customer_email if operator else None, rep=p.rep,
                   premise_class=p.premise_class, se_version=p.se_version,
                   enhanced_meter=p.enhanced_meter, status=p.status, updated_at=p.updated_at)


def _install_code_pattern() -> str:
    """What zigbee_se.parse_install_code reads, as one regex: hex (any of its separators, an
    optional 0x) of 6, 8, 12 or 16 bytes plus the 2-byte CRC, or a QR code in a format zigpy knows
    (those patterns are searched, not anchored, as the parser does). The CRC itself is checked
    by the gateway: a bad one is a 422 `install_code_crc_mismatch`."""
    sep = f"[:\\-_.{_PY_SPACE}]"
    digit = f"{sep}*[0-9A-Fa-f]"
    hexed = (f"^{sep}*(?:0[xX])?(?:{digit}){{16}}(?:(?:{digit}){{4}}|(?:{digit}){{12}}|(?:{digit}){{20}})?{sep}*$")
    qr = [re.sub(r"\(\?P<[a-z_]+>", "(", p) for p in QR_CODE_FORMATS if "?P<code>" in p]
    return "|".join([f"(?:{hexed})", *(f"(?:{p})" for p in qr)])


class DeviceIn(_In):
    eui64: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$",
                                description="the device's MAC (EUI-64), 16 hex digits")]
    device_type: Annotated[str, Field(min_length=1, max_length=40,
                                      examples=["in_home_display", "thermostat",
                                                "load_control_device"])]
    install_code: Annotated[str, Field(
        min_length=1, max_length=200, examples=["8304 8DE5 6EB1 6D6A 1A8D"],
        json_schema_extra={"pattern": _install_code_pattern()},
        description="as printed on the device (hex, any separators) or its QR code; checked at "
                    "once (CRC-16/X-25), never stored: only the derived link key is, encrypted. A "
                    "bad CRC is a 422 `install_code_crc_mismatch` (a schema cannot express a CRC), "
                    "a wrong length or non-hex text a 422 `install_code_invalid`")]
    join_window_days: Annotated[int, Field(ge=1, le=30, description="how long the meter waits "
                                           "for the device to join (1-30 days)")] = 7


class DeviceEventOut(BaseModel):
    state: str
    at: datetime
    reason: str | None = Field(description="why it failed: wrong_install_code, "
                                           "join_window_expired, device_limit_reached, ...")
    detail: str | None = Field(description="the route's own words")
    operation_id: int | None


class DeviceOut(BaseModel):
    esi_id: str
    eui64: str
    device_type: str
    status: DeviceStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: HanDevice) -> DeviceOut:
        return cls(esi_id=d.esi_id, eui64=d.eui64, device_type=d.device_type, status=d.status,
                   created_at=d.created_at, updated_at=d.updated_at)


class DeviceDetailOut(DeviceOut):
    join_window_ends_at: datetime | None
    last_reason: str | None
    history: list[DeviceEventOut]


class HanOperationOut(BaseModel):
    id: int
    esi_id: str
    eui64: str | None
    kind: str
    state: str = Field(description="queued, submitted, done or failed")
    reason: str | None
    created_at: datetime
    updated_at: datetime


class HanHistoryOut(BaseModel):
    operations: list[HanOperationOut]
    events: list[DeviceEventOut]


# The invitation's rules are checked by AgreementService.validate, which answers every problem
# at once with the gateway's own codes (esi_id_wrong_length, premises_required...). The document
# states the same rules (json_schema_extra: in the schema, not enforced a second time here), so a
# schema-valid invitation is refused only for what a schema cannot know: what is on record.
_DURATIONS: list[JsonValue] = [*sorted(set(DURATIONS_MONTHS) | set(LARGE_COMMERCIAL_DURATIONS_MONTHS))]
# Python's `\s` (str.isspace) spelt out: a JSON schema regex's `\s` is ECMA-262's, another set.
_PY_SPACE = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())
EMAIL_PATTERN = EMAIL_RE.pattern.replace(r"\s", _PY_SPACE)


class InvitationPremiseIn(_In):
    esi_id: Annotated[str, Field(json_schema_extra={"pattern": ESI_ID_PATTERN})]
    meter_number: Annotated[str, Field(json_schema_extra={"minLength": 1, "maxLength": 40})]


class EnergyDataIn(_In):
    """The terms of an energy_data agreement."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"allOf": [
        {"if": {"properties": {"mode": {"const": DataMode.ONE_TIME.value}}},
         "then": {"required": ["from", "to"], "properties": {"from": {"type": "string"}, "to": {"type": "string"}}}},
        {"if": {"properties": {"mode": {"const": DataMode.CONTINUOUS.value}}},
         "then": {"properties": {"from": {"type": "null"}, "to": {"type": "null"}}}},
    ]})

    mode: DataMode = Field(description="one_time: a past period (up to 13 months back); continuous: "
                                       "from acceptance for duration_months (1, 3, 6, 9 or 12)")
    interval: UsageInterval = Field(description="the finest data granted: 15min also grants daily and "
                                                "monthly, daily also monthly")
    from_: AwareDatetime | None = Field(default=None, alias="from",
                                        description="one_time only: start of the period, on a 15-minute "
                                                    "boundary, with its UTC offset")
    to: AwareDatetime | None = Field(default=None, description="one_time only: end of the period "
                                                               "(exclusive), at most now")

    def terms(self) -> EnergyDataTerms:
        return EnergyDataTerms(self.mode, self.interval, self.from_, self.to)


class EnergyDataOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mode: DataMode
    interval: UsageInterval
    from_: datetime | None = Field(default=None, serialization_alias="from")
    to: datetime | None = None


class InvitationIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"if": {"properties": {"kind": {"const": AgreementKind.IN_HOME_DEVICE_SERVICES.value}}},
         "then": {"properties": {"scopes": {"minItems": 1}}, "required": ["scopes"]}},
        {"if": {"properties": {"kind": {"not": {"const": AgreementKind.IN_HOME_DEVICE_SERVICES.value}}}},
         "then": {"properties": {"scopes": {"maxItems": 0}}}},
        {"if": {"properties": {"kind": {"const": AgreementKind.ENERGY_DATA.value}}},
         "then": {"required": ["data"], "properties": {"data": {"type": "object"}}},
         "else": {"not": {"required": ["data"]}}},
    ]})

    kind: AgreementKind
    scopes: list[Scope] = Field(default_factory=list, json_schema_extra={"uniqueItems": True},
                                description="in_home_device_services: at least one of text, price, "
                                            "load_control; other kinds: none")
    premises: list[InvitationPremiseIn] = Field(json_schema_extra={
        "minItems": 1, "maxItems": MAX_PREMISES_PER_INVITATION})
    customer_email: str = Field(json_schema_extra={"pattern": EMAIL_PATTERN},
                                description="the customer of record at every premise")
    duration_months: int = Field(json_schema_extra={"enum": _DURATIONS},
                                 description="1, 3, 6, 9 or 12 (24, 36: large commercial); a "
                                             "continuous energy_data agreement: 1-12")
    data: EnergyDataIn | None = Field(default=None, description="energy_data agreements only: which "
                                                                "data, which period, how often")
    customer_language: Literal["en", "es"] = Field(
        default="en", description="the customer's language (SMT's customerLanguagePreference): the consent "
        "and termination pages and every agreement email are in it; Texas customers may choose Spanish")


class RenewIn(_In):
    duration_months: int = Field(json_schema_extra={"enum": _DURATIONS},
                                 description="1, 3, 6, 9 or 12 (24, 36: large commercial)")


class AgreementPremiseOut(BaseModel):
    esi_id: str
    meter_number: str


class AgreementOut(BaseModel):
    id: int
    party_id: int
    kind: AgreementKind
    scopes: list[Scope]
    customer_email: str
    duration_months: int
    state: AgreementState
    premises: list[AgreementPremiseOut]
    created_at: datetime
    invitation_expires_at: datetime
    resend_count: int
    renewal_pending: bool
    starts_at: datetime | None
    ends_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    data: EnergyDataOut | None = None
    customer_language: Literal["en", "es"] = "en"

    @classmethod
    def of(cls, a: Agreement) -> AgreementOut:
        return cls(id=a.id, party_id=a.party_id, kind=a.kind, scopes=list(a.scopes),
                   customer_email=a.customer_email, duration_months=a.duration_months,
                   state=a.state,
                   premises=[AgreementPremiseOut(esi_id=p.esi_id, meter_number=p.meter_number)
                             for p in a.premises],
                   created_at=a.created_at, invitation_expires_at=a.invitation_expires_at,
                   resend_count=a.resend_count, renewal_pending=a.renewal_months is not None,
                   starts_at=a.starts_at, ends_at=a.ends_at, ended_at=a.ended_at,
                   end_reason=a.end_reason, customer_language="es" if a.customer_language == "es" else "en",
                   data=None if a.data is None else EnergyDataOut(
                       mode=a.data.mode, interval=a.data.interval, from_=a.data.period_start,
                       to=a.data.period_end))


class AuthorizationIn(_In):
    action: Action
    device_eui64: Annotated[str | None, Field(pattern=r"^[0-9A-Fa-f]{16}$")] = None


class DecisionOut(BaseModel):
    allowed: bool
    reason: str
    agreement_id: int | None

    @classmethod
    def of(cls, d: Decision) -> DecisionOut:
        return cls(allowed=d.allowed, reason=d.reason, agreement_id=d.agreement_id)


class AuditOut(BaseModel):
    id: int
    at: datetime
    principal_role: Role
    principal_id: int | None
    action: str
    esi_id: str
    device_eui64: str | None
    agreement_id: int | None
    allowed: bool
    reason: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(**{f: getattr(e, f) for f in cls.model_fields})


class MeOut(BaseModel):
    role: Role
    credential_id: int | None
    party: PartyOut | None = None
    technician_id: int | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    schema_revision: str | None = None
    reason: str | None = Field(None, description="why not ready (503)")
    mqtt_api: Literal["connected", "connecting", "disconnected"] | None = Field(
        None, description="the MQTT API's broker connection, when [mqtt_api] is enabled: connecting (never "
        "connected yet), connected, or disconnected (connected once and lost since; reconnecting). The REST "
        "API is ready either way")
    mqtt_api_reason: str | None = Field(None, description="why the MQTT API is disconnected")


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of a listing as the API answers it (the store's `Page` is what the store read)."""

    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # The published OpenAPI names (Page_PartyOut_, ...) stay as they were before the rename.
        return "Page" + super().model_parametrized_name(params).removeprefix(cls.__name__)


class ImportRowErrorOut(BaseModel):
    row: int = Field(description="line number in the file; the header is line 1")
    column: str
    value: str
    problem: str


class ImportReportOut(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected_rows: int
    agreements_ended: int
    errors: list[ImportRowErrorOut]


class LifecycleOut(BaseModel):
    expired: int
    completed: int
    reminded: int
    renewals_lapsed: int
    mails_sent: int
    mails_failed: int


class ExcludedOut(BaseModel):
    esi_id: str
    reason: str = Field(description="no_consent, scope_missing, meter_capability: ..., device_limit: ..., "
                                    "conflict with event N")


class AcceptedOut(BaseModel):
    """The 202 of POST /v1/han-requests: the request is stored and will be delivered."""

    id: int = Field(description="the request's id: GET /v1/han-requests/{id}")
    kind: RequestKind
    se_id: int | None = Field(description="the SE message id / issuer event id the gateway allocated")
    targeted: int = Field(description="premises it goes to (cancellations: premises already reached)")
    excluded: list[ExcludedOut] = Field(description="premises left out, each with why")
    fanout: Literal["expanding"] | None = Field(description="all_premises: expanding in the background")
    starts_at: datetime | None
    block_period_request_id: int | None = Field(
        None, description="a price's block period: its companion request")


class HanRequestOut(BaseModel):
    """A request's summary: premises and devices counted by state."""

    id: int
    kind: RequestKind
    state: str = Field(description="accepted, expanding, done, cancelled, ...")
    se_id: int | None
    created_at: datetime
    targeted: int
    excluded: list[ExcludedOut]
    fanout: bool = Field(description="sent with all_premises")
    cancels_request_id: int | None
    part_of_request_id: int | None = Field(description="a block period: the price it belongs to")
    block_period_request_id: int | None = Field(description="a price: its block period's request")
    starts_at: datetime | None
    ends_at: datetime | None
    premises_by_state: dict[str, int]
    devices_by_state: dict[str, int]
    request: dict[str, Any] = Field(description="the body as accepted")


class DeviceStateOut(BaseModel):
    eui64: str | None = Field(description="null: the premise as a whole (history)")
    state: str
    at: datetime
    detail: str | None


class DeliveryOut(BaseModel):
    delivery_id: int
    esi_id: str
    state: str = Field(description="queued, submitted, delivered, failed, expired, cancelled, unknown (the route "
                                   "took it and no delivery report came within confirm_within_seconds; a late "
                                   "report still moves it to delivered); a device write "
                                   "(set_enrollment_group) ends written, partly_written, refused or no_answer; a price "
                                   "or block period asking for acknowledgement ends acknowledged, partly_acknowledged "
                                   "or no_acknowledgement price_ack_minutes after delivery")
    reason: str | None
    se_id: int | None = Field(description="the SE message id / issuer event id this item carries")
    cancels_request_id: int | None = Field(description="a cancel's item: the request it cancels (a cancel-all "
                                                       "has one item per cancelled event)")
    reference: str | None = Field(description="the route's (head-end's) id for this item")
    attempts: int
    se_version: str
    command: str
    frame: str | None = Field(description="null: the gateway hands the route the SE command's fields (a route that "
                              "sends frames encodes them for `se_version`; a MultiSpeak or IEC 61968-9 head-end "
                              "encodes its own); deliveries stored by earlier versions may show the frame, hex")
    updated_at: datetime
    devices: list[DeviceStateOut]
    history: list[DeviceStateOut]


class FieldErrorOut(BaseModel):
    field: str = Field(description='e.g. "premises[0].esi_id"')
    code: str
    message: str
    value: Any = None
    limit: Any = Field(None, description="the limit the value broke, where it is a number (e.g. `text_too_long`: "
                       "UTF-8 bytes); absent otherwise")


class ProblemOut(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = Field(examples=["/docs/errors#invalid_request"],
                      description="a link to the section of the error guide that explains `code`")
    title: str
    status: int
    detail: str
    code: str = Field(description="machine-readable; the last part of `type`")
    instance: str | None = None
    errors: list[FieldErrorOut] | None = Field(None, description="one entry per bad field")


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemOut, "description": description,
            "content": {"application/problem+json": {}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("missing, unknown or revoked bearer token"),
    403: _problem("not allowed (the code says why)"),
    404: _problem("not found, or not visible to you"),
    409: _problem("conflicts with the current state"),
    422: _problem("invalid fields, each named in `errors` (`invalid_request`); a body that is not "
                  "JSON is `invalid_json`"),
    429: _problem("rate limited; see the Retry-After header"),
}


# ---------------------------------------------------------------- webhooks


class WebhookIn(_In):
    url: Annotated[str, Field(
        min_length=1, max_length=500, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://", json_schema_extra={"format": "uri"},
        examples=["https://example.com/hangw-events"],
        description="http or https, a host (IDNA-encodable), an optional port (1-65535), no user name or "
                    "password; the host must be, and resolve to, public addresses unless the operator "
                    "allows its network")]


class WebhookOut(BaseModel):
    id: int
    url: str = Field(description="as it is called: normalized (lower-case scheme and host, IDNA-encoded)")
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="`whsec_…`: the key events are signed with. Shown once.")


class DeadLetterOut(BaseModel):
    id: int = Field(description="the dead letter's id on this webhook (what redeliver takes)")
    event_id: int | None = Field(description="the event's id (`webhook-id` is `evt_<event_id>`; "
                                 "null: queued before the event log, `webhook-id` `msg_<id>`)")
    request_id: int = Field(description="the request the event is about (0: not a request's event)")
    subject: str | None = Field(description="what the event is about, e.g. `request:12`, `agreement:5`")
    event: str = Field(description="the JSON body as it would be POSTed")
    created_at: datetime
    attempts: int
    last_error: str | None = Field(description='why the last attempt failed, e.g. "HTTP 500"')
    dead_at: datetime


class EventOut(BaseModel):
    id: int = Field(description="the event id: the body's `id`, the webhook-id `evt_<id>`, the MQTT event id")
    type: str = Field(description="see the event catalogue in docs/third-party-api.md")
    subject: str = Field(description="what it is about; events of one subject are in id order")
    created_at: datetime
    event: dict[str, Any] = Field(description="the body exactly as a webhook POSTs it")


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="pass as `after` for the next page (the last id here, or the `after` "
                            "given when there is none yet)")


class HanRequestListItemOut(BaseModel):
    """A request in a list: its own fields; its premises and devices by state are in
    `GET /v1/han-requests/{id}`."""

    id: int
    kind: RequestKind
    state: HanRequestState
    se_id: int | None
    created_at: datetime
    targeted: int
    fanout: bool = Field(description="sent with all_premises")
    cancels_request_id: int | None
    part_of_request_id: int | None = Field(description="a block period: the price it belongs to")
    starts_at: datetime | None
    ends_at: datetime | None


class RequeuedOut(BaseModel):
    requeued: int = Field(description="dead letters put back in the queue")
