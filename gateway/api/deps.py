"""What every route needs: the services, the calling principal (bearer token), paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment

from gateway.agreements import AgreementService
from gateway.api.params import CURSOR_DOC, CURSOR_MAX_LENGTH, CURSOR_PATTERN
from gateway.api.problems import Unauthorized
from gateway.api.ratelimit import Buckets
from gateway.clock import Clock
from gateway.config import GatewayConfig
from gateway.domain.model import Role
from gateway.domain.records import Principal
from gateway.errors import Forbidden
from gateway.mail import Mailer
from gateway.store.store import Store


@dataclass
class Services:
    config: GatewayConfig
    store: Store
    mailer: Mailer
    clock: Clock
    templates: Environment
    agreements: AgreementService
    rate_limits: Buckets


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Declared so /openapi.json names the bearer scheme; the token is checked by the operation's
# policy (gateway/api/policy.py) before this runs.
_bearer = HTTPBearer(auto_error=False, description="API token from `hangw admin token issue` or "
                     "POST /v1/parties/{id}/credentials")


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller the operation's policy authenticated (and rate limited) before the handler."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:  # only an operation whose policy is public or a customer link gets here
        raise Unauthorized("send `Authorization: Bearer <token>`")
    return found


def provisioned_by(who: Principal) -> int | None:
    """The party whose devices alone a third party sees on a premise; None for operators and
    technicians, who see all of them (issue 11: devices of another party on a shared premise)."""
    return who.party_id if who.role is Role.THIRD_PARTY else None


async def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.role is not Role.OPERATOR:
        raise Forbidden("operators only", code="operator_only")
    return who


async def third_party(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.role is not Role.THIRD_PARTY:
        raise Forbidden("third parties only (the agreement is the third party's)",
                        code="third_party_only")
    return who


@dataclass(frozen=True)
class Paging:
    cursor: str | None
    limit: int


async def paging(
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH, pattern=CURSOR_PATTERN,
                                        description=CURSOR_DOC)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Paging:
    return Paging(cursor or None, limit)  # an empty cursor= is the first page, as an omitted one


Svc = Annotated[Services, Depends(services)]
Who = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
ThirdParty = Annotated[Principal, Depends(third_party)]
Pages = Annotated[Paging, Depends(paging)]
