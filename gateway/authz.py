"""Authorization: the one function that answers "may this principal do this to this premise now?".

Every API path that touches a premise or its devices asks `authorize`; the request pipeline (next
issue) asks it again for each HAN request. Decisions on HAN actions (provision, text, price, load
control), allowed or refused, go to the append-only audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.domain.model import (
    AUDITED_ACTIONS,
    SCOPE_FOR_ACTION,
    Action,
    AgreementKind,
    AgreementState,
    Role,
    Scope,
    UsageInterval,
    interval_granted,
)
from gateway.domain.records import Agreement, Principal
from gateway.store.store import Store

TECHNICIAN_ACTIONS = frozenset({Action.VIEW_PREMISE, Action.VIEW_DEVICES, Action.PROVISION_DEVICE,
                                Action.MANAGE_HAN})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Machine-readable: operator, assigned_technician, agreement, unknown_premise,
    # premise_not_active, operator_only, not_assigned, technician_cannot_send, no_agreement,
    # wrong_agreement_kind, scope_not_granted, operator_or_technician_only; for read_usage also
    # period_not_covered, interval_not_granted.
    reason: str
    agreement_id: int | None = None
    # False when the principal may not even know the premise exists (answer 404, not 403).
    visible: bool = True


async def authorize(
    store: Store,
    principal: Principal,
    action: Action,
    esi_id: str,
    *,
    now: datetime,
    device_eui64: str | None = None,
) -> Decision:
    decision = await _decide(store, principal, action, esi_id, now)
    if action in AUDITED_ACTIONS:
        await store.append_audit(
            at=now,
            principal=principal,
            action=action.value,
            esi_id=esi_id,
            device_eui64=device_eui64,
            agreement_id=decision.agreement_id,
            allowed=decision.allowed,
            reason=decision.reason,
        )
    return decision


async def _decide(
    store: Store, principal: Principal, action: Action, esi_id: str, now: datetime
) -> Decision:
    if action is Action.MANAGE_PREMISE and principal.role is not Role.OPERATOR:
        # Closed to every other role: the same answer for every ESI ID, known or not.
        return Decision(False, "operator_only")
    premise = await store.get_premise(esi_id)
    if premise is None:
        return Decision(False, "unknown_premise", visible=False)
    if principal.role is Role.OPERATOR:
        return Decision(True, "operator")
    if premise.status != "active":
        return Decision(False, "premise_not_active", visible=False)

    if principal.role is Role.FIELD_TECHNICIAN:
        if principal.technician_id is None or not await store.technician_assigned(
            principal.technician_id, esi_id
        ):
            return Decision(False, "not_assigned", visible=False)
        if action not in TECHNICIAN_ACTIONS:
            return Decision(False, "technician_cannot_send")
        return Decision(True, "assigned_technician")

    # Third party: only its own agreements in force right now count. Ended or expired agreements
    # stop access at once, even before the lifecycle timer has updated their state.
    in_force = [
        a
        for a in await store.agreements_for_premise(
            esi_id, states=[AgreementState.ACTIVE], party_id=principal.party_id
        )
        if a.in_force(now)
    ]
    return decide_for_agreements(action, in_force)


class _AgreementTerms(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> AgreementKind: ...
    @property
    def scopes(self) -> tuple[Scope, ...]: ...


def decide_for_agreements(action: Action, in_force: Sequence[_AgreementTerms]) -> Decision:
    """A third party's decision on a known, active premise, given its agreements in force there
    (oldest first). Pure: the request pipeline's batched lookup (`gateway.pipeline.consent`)
    decides with the same function as `authorize`."""
    if not in_force:
        return Decision(False, "no_agreement", visible=False)
    if action in (Action.VIEW_PREMISE, Action.VIEW_DEVICES):
        return Decision(True, "agreement", in_force[0].id)
    if action is Action.MANAGE_HAN:  # the whole HAN of a premise: not a third party's to reset
        return Decision(False, "operator_or_technician_only", in_force[0].id)
    if action is Action.READ_USAGE:  # the period is checked by `usage_grant`, once it is known
        data = [a for a in in_force if a.kind is AgreementKind.ENERGY_DATA]
        if not data:
            return Decision(False, "wrong_agreement_kind", in_force[0].id)
        return Decision(True, "agreement", data[0].id)
    if action is Action.PROVISION_DEVICE:
        kind = AgreementKind.IN_HOME_DEVICE
        matching = [a for a in in_force if a.kind is kind]
        if not matching:
            return Decision(False, "wrong_agreement_kind", in_force[0].id)
        return Decision(True, "agreement", matching[0].id)
    scope = SCOPE_FOR_ACTION[action]
    services = [a for a in in_force if a.kind is AgreementKind.IN_HOME_DEVICE_SERVICES]
    if not services:
        return Decision(False, "wrong_agreement_kind", in_force[0].id)
    granted = [a for a in services if scope in a.scopes]
    if not granted:
        return Decision(False, "scope_not_granted", services[0].id)
    return Decision(True, "agreement", granted[0].id)


def usage_grant(in_force: Sequence[Agreement], start: datetime, end: datetime,
                interval: UsageInterval) -> Decision:
    """A third party's read of usage data in [start, end) at `interval`, given its agreements in
    force at the premise: allowed when one Energy Data agreement covers the whole period at that
    interval (or a finer one). A one-time agreement covers its past period; a continuous one its
    term from acceptance to its end, so a read reaching past the end, or before acceptance, is
    refused. An agreement that ended is not in force: nothing is readable through it any more
    (ENERGY_DATA.md §1.2: delivery stops; what was delivered stays with the party)."""
    data = [a for a in in_force if a.kind is AgreementKind.ENERGY_DATA]
    if not data:
        return Decision(False, "no_agreement", visible=False)
    granting = [a for a in data if a.data is not None and interval_granted(a.data.interval, interval)]
    if not granting:
        return Decision(False, "interval_not_granted", data[0].id)
    for agreement in granting:
        period = agreement.usage_period()
        if period is not None and period[0] <= start and end <= period[1]:
            return Decision(True, "agreement", agreement.id)
    return Decision(False, "period_not_covered", granting[0].id)


async def usage_agreements(store: Store, principal: Principal, esi_id: str, now: datetime) -> list[Agreement]:
    """The principal's Energy Data agreements in force at the premise now (third parties)."""
    return [a for a in await store.agreements_for_premise(
        esi_id, states=[AgreementState.ACTIVE], party_id=principal.party_id)
        if a.in_force(now) and a.kind is AgreementKind.ENERGY_DATA]
