"""Agreements: invitations by third parties, their lifecycle, and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.agreements import Invitation, InvitationPremise
from gateway.api.deps import Operator, Pages, Svc, ThirdParty, Who
from gateway.api.links import links, to
from gateway.api.params import MAX_ID, DbId
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    AgreementOut,
    AuditOut,
    InvitationIn,
    LifecycleOut,
    PageOut,
    RenewIn,
)
from gateway.domain.model import Action, AgreementKind, AgreementState, Role
from gateway.domain.records import Party, Principal
from gateway.errors import Forbidden, NotFound

ID = "$response.body#/id"

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["agreements"])


async def _party(svc: Svc, who: Principal) -> Party:
    assert who.party_id is not None
    party = await svc.store.get_party(who.party_id)
    if party is None:
        raise NotFound(f"no party {who.party_id}")
    return party


@router.post("/agreements", status_code=201, response_model=AgreementOut, responses=links(
    201, GetAgreement=to("/v1/agreements/{agreement_id}", "get", agreement_id=ID),
    Resend=to("/v1/agreements/{agreement_id}/resend", "post", agreement_id=ID),
    Renew=to("/v1/agreements/{agreement_id}/renew", "post", agreement_id=ID),
    Terminate=to("/v1/agreements/{agreement_id}/terminate", "post", agreement_id=ID)))
async def invite(body: InvitationIn, svc: Svc, who: ThirdParty) -> AgreementOut:
    """Invite a customer: validated field by field, then the customer gets a one-click email."""
    party = await _party(svc, who)
    invitation = Invitation(
        kind=body.kind, scopes=tuple(body.scopes),
        premises=tuple(InvitationPremise(p.esi_id, p.meter_number) for p in body.premises),
        customer_email=body.customer_email, duration_months=body.duration_months,
        data=body.data.terms() if body.data is not None else None, customer_language=body.customer_language)
    return AgreementOut.of(await svc.agreements.invite(party, invitation))


@router.get("/agreements", response_model=PageOut[AgreementOut])
async def list_agreements(
    *, svc: Svc, who: Who, page: Pages,
    state: Annotated[list[AgreementState] | None, Query()] = None,
    kind: AgreementKind | None = None,
    esi_id: str | None = None,
    party_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="operators only")] = None,
) -> PageOut[AgreementOut]:
    """Third parties: their own agreements (ended ones for 45 days). Operators: all."""
    if who.role is Role.FIELD_TECHNICIAN:
        raise Forbidden("agreements are for operators and their third parties", code="forbidden")
    if who.role is Role.THIRD_PARTY:
        party_id = who.party_id
        ended_since = svc.clock.now() - _visibility(svc)
    else:
        ended_since = None
    found = await svc.store.list_agreements(
        party_id=party_id, states=state, kind=kind, esi_id=esi_id, ended_since=ended_since,
        cursor=page.cursor, limit=page.limit)
    return PageOut[AgreementOut](items=[AgreementOut.of(a) for a in found.items],
                              next_cursor=found.next_cursor)


def _visibility(svc: Svc) -> timedelta:
    return timedelta(days=svc.config.agreements.visibility_days)


@router.get("/agreements/{agreement_id}", response_model=AgreementOut)
async def get_agreement(agreement_id: DbId, svc: Svc, who: Who) -> AgreementOut:
    if who.role is Role.FIELD_TECHNICIAN:
        raise NotFound(f"no agreement {agreement_id}")
    party_id = who.party_id if who.role is Role.THIRD_PARTY else None
    return AgreementOut.of(await svc.agreements.get_for_party(agreement_id, party_id))


@router.post("/agreements/{agreement_id}/resend", response_model=AgreementOut)
async def resend(agreement_id: DbId, svc: Svc, who: ThirdParty) -> AgreementOut:
    """Send the invitation again (new link, new 30 days); allowed once."""
    return AgreementOut.of(await svc.agreements.resend(agreement_id, await _party(svc, who)))


@router.post("/agreements/{agreement_id}/renew", response_model=AgreementOut)
async def renew(agreement_id: DbId, body: RenewIn, svc: Svc, who: ThirdParty) -> AgreementOut:
    """Ask the customer to extend an active agreement (their consent link, by email)."""
    return AgreementOut.of(await svc.agreements.renew(agreement_id, await _party(svc, who),
                                                      body.duration_months))


@router.post("/agreements/{agreement_id}/terminate", response_model=AgreementOut)
async def terminate(agreement_id: DbId, svc: Svc, who: ThirdParty) -> AgreementOut:
    """End an agreement (or withdraw an invitation) now; access stops at once."""
    return AgreementOut.of(await svc.agreements.terminate_by_party(agreement_id,
                                                                   await _party(svc, who)))


@router.get("/audit", response_model=PageOut[AuditOut])
async def audit(*, svc: Svc, who: Who, page: Pages, esi_id: str | None = None,
                action: Action | None = None, allowed: bool | None = None) -> PageOut[AuditOut]:
    """Authorization decisions on HAN actions. Third parties and technicians see their own."""
    role, subject = (None, None) if who.role is Role.OPERATOR else (who.role, who.subject_id)
    found = await svc.store.list_audit(principal_role=role, principal_id=subject, esi_id=esi_id,
                                       action=action.value if action else None, allowed=allowed,
                                       cursor=page.cursor, limit=page.limit)
    return PageOut[AuditOut](items=[AuditOut.of(e) for e in found.items],
                          next_cursor=found.next_cursor)


@router.post("/lifecycle-runs", response_model=LifecycleOut)
async def run_lifecycle(svc: Svc, _: Operator) -> LifecycleOut:
    """Run the agreement timers now (they also run every `lifecycle_interval_seconds`)."""
    report = await svc.agreements.run_lifecycle()
    return LifecycleOut(expired=report.expired, completed=report.completed,
                        reminded=report.reminded, renewals_lapsed=report.renewals_lapsed,
                        mails_sent=report.mails_sent, mails_failed=report.mails_failed)
