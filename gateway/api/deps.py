"""What every route needs: the services, the calling principal (bearer token), paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment

from gateway.agreements import AgreementService
from gateway.api.params import CURSOR_DOC, CURSOR_MAX_LENGTH, CURSOR_PATTERN
from gateway.api.problems import RateLimited, Unauthorized
from gateway.api.ratelimit import TokenBuckets
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
    rate_limits: TokenBuckets


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="API token from `hangw admin token issue` or "
                     "POST /v1/parties/{id}/credentials")


async def principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None:
        raise Unauthorized("send `Authorization: Bearer <token>`")
    found = await svc.store.principal_for_token(creds.credentials)
    if found is None:
        raise Unauthorized("the token is unknown, revoked, or its party is suspended")
    if found.role is Role.THIRD_PARTY and found.party_id is not None:
        wait = svc.rate_limits.take(found.party_id)
        if wait is not None:
            rl = svc.config.rate_limit
            raise RateLimited(f"party {found.party_id} exceeded {rl.requests_per_second:g} "
                              f"requests/s (burst {rl.burst}); retry after {wait} s", wait)
    request.state.principal = found
    return found


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
