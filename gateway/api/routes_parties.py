"""Third parties, field technicians and their API credentials."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.api.deps import Operator, Pages, Svc, Who
from gateway.api.links import links, to
from gateway.api.params import DbId
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import (
    PROBLEM_RESPONSES,
    AssignmentIn,
    CredentialIn,
    CredentialOut,
    IssuedCredential,
    MeOut,
    PageOut,
    PartyIn,
    PartyOut,
    PartyPatch,
    TechnicianIn,
    TechnicianOut,
)
from gateway.domain.esi_id import EsiIdError, tdsp_for_esi_id
from gateway.domain.model import PartyStatus, Role
from gateway.domain.records import Principal
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound
from gateway.store.errors import ConstraintViolation

ID = "$response.body#/id"
CREDENTIAL_ID = "$response.body#/credential/id"

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["parties"])


def _own_party(who: Principal, party_id: int) -> None:
    """Operators manage every party; a third party only itself. Others' ids look absent."""
    if who.role is Role.OPERATOR:
        return
    if who.role is Role.THIRD_PARTY and who.party_id == party_id:
        return
    raise NotFound(f"no party {party_id}")


@router.get("/me", response_model=MeOut)
async def me(svc: Svc, who: Who) -> MeOut:
    party = await svc.store.get_party(who.party_id) if who.party_id else None
    return MeOut(role=who.role, credential_id=who.credential_id,
                 party=PartyOut.of(party) if party else None, technician_id=who.technician_id)


@router.post("/parties", status_code=201, response_model=PartyOut, responses=links(
    201, GetParty=to("/v1/parties/{party_id}", "get", party_id=ID),
    PatchParty=to("/v1/parties/{party_id}", "patch", party_id=ID),
    IssueCredential=to("/v1/parties/{party_id}/credentials", "post", party_id=ID),
    ListCredentials=to("/v1/parties/{party_id}/credentials", "get", party_id=ID)))
async def create_party(body: PartyIn, svc: Svc, _: Operator) -> PartyOut:
    if await svc.store.get_party_by_duns(body.duns) is not None:
        raise Conflict(f"a party with DUNS {body.duns} exists", code="duns_taken",
                       errors=[FieldError("duns", "duns_taken", "already registered", body.duns)])
    try:
        party = await svc.store.create_party(name=body.name, duns=body.duns,
                                             contact_email=body.contact_email, now=svc.clock.now())
    except ConstraintViolation:
        raise Conflict(f"a party with DUNS {body.duns} exists", code="duns_taken") from None
    return PartyOut.of(party)


@router.get("/parties", response_model=PageOut[PartyOut])
async def list_parties(svc: Svc, _: Operator, page: Pages,
                       status: PartyStatus | None = None) -> PageOut[PartyOut]:
    found = await svc.store.list_parties(status=status, cursor=page.cursor, limit=page.limit)
    return PageOut[PartyOut](items=[PartyOut.of(p) for p in found.items],
                          next_cursor=found.next_cursor)


@router.get("/parties/{party_id}", response_model=PartyOut)
async def get_party(party_id: DbId, svc: Svc, who: Who) -> PartyOut:
    _own_party(who, party_id)
    party = await svc.store.get_party(party_id)
    if party is None:
        raise NotFound(f"no party {party_id}")
    return PartyOut.of(party)


@router.patch("/parties/{party_id}", response_model=PartyOut)
async def patch_party(party_id: DbId, body: PartyPatch, svc: Svc, _: Operator) -> PartyOut:
    if await svc.store.get_party(party_id) is None:
        raise NotFound(f"no party {party_id}")
    await svc.store.set_party_status(party_id, body.status)
    party = await svc.store.get_party(party_id)
    assert party is not None
    return PartyOut.of(party)


@router.post("/parties/{party_id}/credentials", status_code=201, response_model=IssuedCredential, responses=links(
    201, RevokeCredential=to("/v1/credentials/{credential_id}", "delete", credential_id=CREDENTIAL_ID)))
async def issue_credential(party_id: DbId, body: CredentialIn, svc: Svc,
                           who: Who) -> IssuedCredential:
    """A new token for the party (rotation: issue the new one, then revoke the old one)."""
    _own_party(who, party_id)
    if await svc.store.get_party(party_id) is None:
        raise NotFound(f"no party {party_id}")
    cred, token = await svc.store.issue_credential(role=Role.THIRD_PARTY, party_id=party_id,
                                                   label=body.label, now=svc.clock.now())
    return IssuedCredential(credential=CredentialOut.of(cred), token=token)


@router.get("/parties/{party_id}/credentials", response_model=PageOut[CredentialOut])
async def list_credentials(*, party_id: DbId, svc: Svc, who: Who, page: Pages,
                           revoked: bool | None = None) -> PageOut[CredentialOut]:
    _own_party(who, party_id)
    found = await svc.store.list_credentials(party_id=party_id, revoked=revoked,
                                             cursor=page.cursor, limit=page.limit)
    return PageOut[CredentialOut](items=[CredentialOut.of(c) for c in found.items],
                               next_cursor=found.next_cursor)


@router.delete("/credentials/{credential_id}", status_code=204)
async def revoke_credential(credential_id: DbId, svc: Svc, who: Who) -> Response:
    cred = await svc.store.get_credential(credential_id)
    if cred is None or (who.role is not Role.OPERATOR and (
            who.role is not Role.THIRD_PARTY or cred.party_id != who.party_id)):
        raise NotFound(f"no credential {credential_id}")
    await svc.store.revoke_credential(credential_id, svc.clock.now())
    return Response(status_code=204)


@router.post("/technicians", status_code=201, response_model=TechnicianOut, responses=links(
    201, IssueCredential=to("/v1/technicians/{technician_id}/credentials", "post", technician_id=ID),
    Assign=to("/v1/technicians/{technician_id}/assignments", "post", technician_id=ID)))
async def create_technician(body: TechnicianIn, svc: Svc, _: Operator) -> TechnicianOut:
    tech = await svc.store.create_technician(name=body.name, email=body.email,
                                             now=svc.clock.now())
    return TechnicianOut.of(tech)


@router.post("/technicians/{technician_id}/credentials", status_code=201,
             response_model=IssuedCredential, responses=links(
                 201, RevokeCredential=to("/v1/credentials/{credential_id}", "delete",
                                          credential_id=CREDENTIAL_ID)))
async def issue_technician_credential(technician_id: DbId, body: CredentialIn, svc: Svc,
                                      _: Operator) -> IssuedCredential:
    if await svc.store.get_technician(technician_id) is None:
        raise NotFound(f"no technician {technician_id}")
    cred, token = await svc.store.issue_credential(
        role=Role.FIELD_TECHNICIAN, technician_id=technician_id, label=body.label,
        now=svc.clock.now())
    return IssuedCredential(credential=CredentialOut.of(cred), token=token)


@router.post("/technicians/{technician_id}/assignments", status_code=204)
async def assign_technician(technician_id: DbId, body: AssignmentIn, svc: Svc,
                            _: Operator) -> Response:
    if await svc.store.get_technician(technician_id) is None:
        raise NotFound(f"no technician {technician_id}")
    try:
        tdsp_for_esi_id(body.esi_id)
    except EsiIdError as exc:
        raise InvalidRequest(str(exc), errors=[FieldError("esi_id", exc.code, exc.reason,
                                                          body.esi_id)]) from None
    if await svc.store.get_premise(body.esi_id) is None:
        raise InvalidRequest("unknown ESI ID", errors=[FieldError(
            "esi_id", "unknown_esi_id", "no premise with this ESI ID is loaded", body.esi_id)])
    await svc.store.assign_technician(technician_id, body.esi_id)
    return Response(status_code=204)
