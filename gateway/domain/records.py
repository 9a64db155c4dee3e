"""Typed records the store hands out (immutable snapshots of rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.domain.model import (
    AgreementKind,
    AgreementState,
    DataMode,
    DeviceStatus,
    PartyStatus,
    PremiseClass,
    Role,
    Scope,
    UsageInterval,
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: one credential of an operator, a third party or a field technician."""

    role: Role
    credential_id: int | None = None
    party_id: int | None = None
    technician_id: int | None = None

    @property
    def subject_id(self) -> int | None:
        return self.party_id if self.role is Role.THIRD_PARTY else self.technician_id


@dataclass(frozen=True)
class Party:
    id: int
    name: str
    duns: str
    contact_email: str
    status: PartyStatus
    created_at: datetime


@dataclass(frozen=True)
class Technician:
    id: int
    name: str
    email: str
    created_at: datetime


@dataclass(frozen=True)
class Credential:
    id: int
    role: Role
    party_id: int | None
    technician_id: int | None
    label: str
    token_prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Premise:
    esi_id: str
    tdsp: str
    meter_number: str
    customer_email: str | None
    rep: str | None
    premise_class: PremiseClass
    se_version: str | None
    enhanced_meter: bool
    status: str  # "active", "removed", "moved_out"
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HanDevice:
    id: int
    esi_id: str
    eui64: str
    device_type: str
    status: DeviceStatus
    party_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AgreementPremise:
    esi_id: str
    meter_number: str


@dataclass(frozen=True)
class EnergyDataTerms:
    """What an Energy Data agreement grants: the mode, the finest interval, and for a one-time
    agreement its past period [period_start, period_end)."""

    mode: DataMode
    interval: UsageInterval
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class Agreement:
    id: int
    party_id: int
    kind: AgreementKind
    scopes: tuple[Scope, ...]
    customer_email: str
    duration_months: int
    state: AgreementState
    created_at: datetime
    updated_at: datetime
    invitation_expires_at: datetime
    resend_count: int
    consent_expires_at: datetime | None
    accepted_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    reminders_sent: int
    renewal_months: int | None
    premises: tuple[AgreementPremise, ...] = field(default=())
    data: EnergyDataTerms | None = None  # Energy Data agreements only
    customer_language: str = "en"  # "en" or "es": the consent pages and agreement emails

    def usage_period(self) -> tuple[datetime, datetime] | None:
        """The period whose usage data the agreement covers: a one-time agreement's past period, a
        continuous one's term from acceptance to its end (None before acceptance, or no data)."""
        if self.data is None:
            return None
        if self.data.mode is DataMode.ONE_TIME:
            if self.data.period_start is None or self.data.period_end is None:
                return None
            return self.data.period_start, self.data.period_end
        if self.starts_at is None or self.ends_at is None:
            return None
        return self.starts_at, self.ends_at

    def in_force(self, now: datetime) -> bool:
        """Active and inside its term at `now` (the lifecycle timer may not have run yet)."""
        return (
            self.state is AgreementState.ACTIVE
            and self.starts_at is not None
            and self.ends_at is not None
            and self.starts_at <= now < self.ends_at
        )


@dataclass(frozen=True)
class AuditEntry:
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
