"""The authorization policy: every operation declares whom it serves, enforced in one place.

`POLICIES` maps each operation ("METHOD /path") to the resource it touches and the relations that
allow a caller in. `PolicyRoute`, the route class of every router, looks its operation up when the
app is built — an operation without a policy stops the app from starting — and, before FastAPI reads
the body or runs the handler: authenticates the bearer token, applies the party's rate limit, checks
the relations, and runs a keyed POST or PUT through the idempotency guard. A caller that is not let in gets
exactly what an unknown id gets (404, same code), unless the operation is closed to its whole role
(403, the same for every id). The table is printed in docs/authorization.md (a test keeps it equal
to this one) and published per operation as `x-policy` in /openapi.json.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from fastapi import Request, Response
from fastapi.routing import APIRoute

from gateway.api.idempotency import check_key, make_guard, run_idempotent
from gateway.api.problems import RateLimited, Unauthorized
from gateway.authz import authorize
from gateway.domain.model import Action, Role
from gateway.domain.records import Principal
from gateway.errors import FieldError, Forbidden, InvalidRequest, NotFound
from gateway.pages.render import SignInRequired
from gateway.pages.sessions import page_principal
from gateway.store import ownership


class Rel(StrEnum):
    """A relation between the caller and the resource that lets the caller in."""

    PUBLIC = "anyone"
    CUSTOMER_LINK = "the customer, by the link token in the path"
    SESSION = "a third party signed in to the dashboard (session cookie)"
    OPERATOR_SESSION = "an operator signed in to the pages (session cookie)"
    FIELD_SESSION = "a field technician signed in to the pages (session cookie)"
    ANY = "any authenticated caller (answers are filtered to what the caller may see)"
    OPERATOR = "operator"
    THIRD_PARTY = "any third party (for its own objects)"
    PARTY_ITSELF = "the party itself"
    OWNER = "the party that owns it"
    PREMISE = "by the premise: operator, an assigned technician, or a party whose agreement in force allows the action"
    DEVICE_OWNER = "by the premise, and for a third party only a device it provisioned"


@dataclass(frozen=True)
class Policy:
    resource: str  # what the operation touches ("party", "premise", "device", …; "-" for none)
    allow: tuple[Rel, ...]
    action: Action | None = None  # the premise action checked (PREMISE, DEVICE_OWNER)
    id_param: str | None = None  # the path parameter that names the resource
    note: str = ""  # what the answer is filtered to

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource": self.resource, "allow": [r.name.lower() for r in self.allow]}
        if self.action is not None:
            out["action"] = self.action.value
        if self.note:
            out["filtered"] = self.note
        return out


OP, TP, OWN, ME = Rel.OPERATOR, Rel.THIRD_PARTY, Rel.OWNER, Rel.PARTY_ITSELF


def _on_premise(action: Action, note: str = "") -> Policy:
    return Policy("premise", (Rel.PREMISE,), action, "esi_id", note)


def _owned(resource: str, id_param: str, *allow: Rel) -> Policy:
    return Policy(resource, allow or (OP, OWN), id_param=id_param)


POLICIES: Final[dict[str, Policy]] = {
    "GET /v1/me": Policy("-", (Rel.ANY,), note="the caller's own identity"),
    # parties, credentials, technicians
    "POST /v1/parties": Policy("party", (OP,)),
    "GET /v1/parties": Policy("party", (OP,)),
    "GET /v1/parties/{party_id}": Policy("party", (OP, ME), id_param="party_id"),
    "PATCH /v1/parties/{party_id}": Policy("party", (OP,), id_param="party_id"),
    "POST /v1/parties/{party_id}/credentials": Policy("party", (OP, ME), id_param="party_id"),
    "GET /v1/parties/{party_id}/credentials": Policy("party", (OP, ME), id_param="party_id"),
    "DELETE /v1/credentials/{credential_id}": _owned("credential", "credential_id"),
    "POST /v1/technicians": Policy("technician", (OP,)),
    "POST /v1/technicians/{technician_id}/credentials": Policy("technician", (OP,), id_param="technician_id"),
    "POST /v1/technicians/{technician_id}/assignments": Policy("technician", (OP,), id_param="technician_id"),
    # premises and their HAN
    "POST /v1/premises": Policy("premise", (OP,)),
    "POST /v1/premises/import": Policy("premise", (OP,)),
    "GET /v1/premises": Policy("premise", (Rel.ANY,), note="premises the caller may see"),
    "GET /v1/premises/{esi_id}": _on_premise(Action.VIEW_PREMISE),
    "DELETE /v1/premises/{esi_id}": _on_premise(Action.MANAGE_PREMISE),
    "POST /v1/premises/{esi_id}/move-out": _on_premise(Action.MANAGE_PREMISE),
    "POST /v1/premises/{esi_id}/authorization": Policy("premise", (Rel.ANY,), id_param="esi_id",
                                                       note="404 for a premise the caller may not see"),
    "GET /v1/premises/{esi_id}/devices": _on_premise(Action.VIEW_DEVICES, "a third party: the devices it provisioned"),
    "POST /v1/premises/{esi_id}/devices": _on_premise(Action.PROVISION_DEVICE),
    "GET /v1/premises/{esi_id}/devices/{eui64}": Policy("device", (Rel.DEVICE_OWNER,), Action.VIEW_DEVICES,
                                                        "esi_id"),
    "DELETE /v1/premises/{esi_id}/devices/{eui64}": Policy("device", (Rel.DEVICE_OWNER,), Action.PROVISION_DEVICE,
                                                           "esi_id"),
    # Load control on the premise, and for a third party a device it provisioned: the group decides
    # which providers' events the device takes, so no party re-groups another's device.
    "PUT /v1/premises/{esi_id}/devices/{eui64}/enrollment-group": Policy(
        "device", (Rel.DEVICE_OWNER,), Action.SEND_LOAD_CONTROL, "esi_id"),
    # usage data: the period and interval are checked against the agreement once the query is read
    "GET /v1/premises/{esi_id}/usage": _on_premise(
        Action.READ_USAGE, "a third party: the period and interval its Energy Data agreement covers"),
    "POST /v1/usage-ingestion-runs": Policy("-", (OP,)),
    # Green Button Connect My Data: the subscription is the party's own Energy Data agreement (its
    # premises, its period: checked once the query is read); ReadingType and LocalTimeParameters are
    # the same for everyone (no party data).
    **{f"GET /espi/1_1/resource/{path}": _owned("agreement", "subscription_id", OWN) for path in (
        "Batch/Subscription/{subscription_id}",
        "Batch/Subscription/{subscription_id}/UsagePoint/{usage_point_id}",
        "Subscription/{subscription_id}/UsagePoint",
        "Subscription/{subscription_id}/UsagePoint/{usage_point_id}",
        "Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading",
        "Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}",
        "Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}/IntervalBlock",
        "Subscription/{subscription_id}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}/IntervalBlock"
        "/{interval_block_id}")},
    "GET /espi/1_1/resource/ReadingType/{reading_type_id}": Policy("-", (OP, TP), note="no party data"),
    "GET /espi/1_1/resource/LocalTimeParameters/{local_time_parameters_id}": Policy("-", (OP, TP),
                                                                                   note="no party data"),
    # on-demand reads: the same agreements as usage reads (an Energy Data agreement in force there)
    "POST /v1/premises/{esi_id}/meter-reads": _on_premise(
        Action.READ_USAGE, "a third party: with an Energy Data agreement in force at the premise"),
    "GET /v1/meter-reads/{read_id}": _owned("meter_read", "read_id"),
    "POST /v1/usage-reports": Policy("usage_report", (TP,),
                                     note="each premise checked against the party's Energy Data agreements"),
    "GET /v1/usage-reports/{report_id}": _owned("usage_report", "report_id", OWN),
    "GET /v1/usage-reports/{report_id}/file": _owned("usage_report", "report_id", OWN),
    "POST /v1/premises/{esi_id}/han/initialize": _on_premise(Action.MANAGE_HAN),
    "POST /v1/premises/{esi_id}/han/clear": _on_premise(Action.MANAGE_HAN),
    "POST /v1/premises/{esi_id}/han/decommission": _on_premise(Action.MANAGE_HAN),
    "GET /v1/premises/{esi_id}/han": _on_premise(Action.VIEW_DEVICES, "a third party: operations on its own devices"),
    "GET /v1/premises/{esi_id}/han/devices": _on_premise(
        Action.VIEW_DEVICES, "a third party: the devices it provisioned, and a count of the others"),
    # agreements and audit
    "POST /v1/agreements": Policy("agreement", (TP,)),
    "GET /v1/agreements": Policy("agreement", (OP, TP), note="a third party: its own"),
    "GET /v1/agreements/{agreement_id}": _owned("agreement", "agreement_id"),
    "POST /v1/agreements/{agreement_id}/resend": _owned("agreement", "agreement_id", OWN),
    "POST /v1/agreements/{agreement_id}/renew": _owned("agreement", "agreement_id", OWN),
    "POST /v1/agreements/{agreement_id}/terminate": _owned("agreement", "agreement_id", OWN),
    "GET /v1/audit": Policy("audit", (Rel.ANY,), note="a third party or technician: its own decisions"),
    "POST /v1/lifecycle-runs": Policy("-", (OP,)),
    # HAN requests and webhooks
    "POST /v1/han-requests": Policy("han_request", (TP,), note="each premise checked against the party's consent"),
    "GET /v1/han-requests": Policy("han_request", (OP, TP), note="a third party: its own"),
    "GET /v1/han-requests/{request_id}": _owned("han_request", "request_id"),
    "GET /v1/han-requests/{request_id}/deliveries": _owned("han_request", "request_id"),
    "GET /v1/events": Policy("event", (TP,), note="its own"),
    "POST /v1/webhooks": Policy("webhook", (TP,)),
    "GET /v1/webhooks": Policy("webhook", (TP,), note="its own"),
    "DELETE /v1/webhooks/{webhook_id}": _owned("webhook", "webhook_id", OWN),
    "GET /v1/webhooks/{webhook_id}/dead-letters": _owned("webhook", "webhook_id", OWN),
    "POST /v1/webhooks/{webhook_id}/dead-letters/redeliver": _owned("webhook", "webhook_id", OWN),
    "POST /v1/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver": _owned("webhook", "webhook_id", OWN),
    # the customer's pages and the service's own
    "GET /consent/{token}": Policy("agreement", (Rel.CUSTOMER_LINK,)),
    "POST /consent/{token}": Policy("agreement", (Rel.CUSTOMER_LINK,)),
    "GET /agreements/terminate/{token}": Policy("agreement", (Rel.CUSTOMER_LINK,)),
    "POST /agreements/terminate/{token}": Policy("agreement", (Rel.CUSTOMER_LINK,)),
    # the server-rendered pages (gateway/pages/): every POST also needs the session's CSRF token
    "POST /language": Policy("-", (Rel.PUBLIC,), note="the visitor's own language cookie"),
    "GET /my": Policy("-", (Rel.PUBLIC,), note="the form that mails a customer their page's link"),
    "POST /my": Policy("-", (Rel.PUBLIC,), note="the same answer whether or not the address is known"),
    "GET /my/{link}": Policy("agreement", (Rel.CUSTOMER_LINK,), note="the link's e-mail address: its agreements, "
                             "and the premises it is the contact of with their devices"),
    "GET /my/{link}/premises/{esi_id}/usage": Policy("premise", (Rel.CUSTOMER_LINK,), note="Download My Data: only "
                                                     "a premise the link's address is the customer contact of"),
    "POST /my/{link}/agreements/{agreement_id}/terminate": Policy("agreement", (Rel.CUSTOMER_LINK,),
                                                                  note="only an agreement of the link's address"),
    "GET /dashboard/sign-in": Policy("-", (Rel.PUBLIC,)),
    "POST /dashboard/sign-in": Policy("-", (Rel.PUBLIC,), note="a third party's API token, exchanged for a session"),
    "POST /dashboard/sign-out": Policy("-", (Rel.PUBLIC,), note="ends the visitor's own session"),
    "POST /dashboard/sign-in/link": Policy("-", (Rel.PUBLIC,), note="mails a one-time sign-in link to a party's "
                                           "contact address; the same answer whether or not it is one"),
    "GET /dashboard/sign-in/link/{token}": Policy("-", (Rel.PUBLIC,), note="a button that uses the link (a GET "
                                                  "uses nothing: mail scanners open links)"),
    "POST /dashboard/sign-in/link/{token}": Policy("-", (Rel.PUBLIC,), note="uses the link once: the session of "
                                                   "its party"),
    "GET /dashboard": Policy("-", (Rel.SESSION,), note="the signed-in party's agreements, premises, devices, requests"),
    "POST /dashboard/agreements/{agreement_id}/resend": Policy("agreement", (Rel.SESSION, OWN),
                                                               id_param="agreement_id"),
    "POST /dashboard/agreements/{agreement_id}/renew": Policy("agreement", (Rel.SESSION, OWN),
                                                              id_param="agreement_id"),
    "POST /dashboard/agreements/{agreement_id}/terminate": Policy("agreement", (Rel.SESSION, OWN),
                                                                  id_param="agreement_id"),
    "GET /dashboard/requests/{request_id}": Policy("han_request", (Rel.SESSION, OWN), id_param="request_id",
                                                   note="its deliveries and device states, live"),
    "POST /dashboard/webhooks/{webhook_id}/redeliver": Policy("webhook", (Rel.SESSION, OWN), id_param="webhook_id"),
    "POST /dashboard/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver": Policy(
        "webhook", (Rel.SESSION, OWN), id_param="webhook_id"),
    "GET /operator": Policy("premise", (Rel.OPERATOR_SESSION,), note="premises, queues and failures per TDSP, "
                            "provisioning in progress"),
    "GET /field": Policy("premise", (Rel.FIELD_SESSION,), note="the premises assigned to the technician: devices, "
                         "provisioning operations"),
    "POST /field/premises/{esi_id}/devices": Policy("premise", (Rel.FIELD_SESSION, Rel.PREMISE),
                                                    Action.PROVISION_DEVICE, "esi_id",
                                                    note="the API's provisioning, from the page's form"),
    "GET /healthz": Policy("-", (Rel.PUBLIC,)),
    "GET /docs": Policy("-", (Rel.PUBLIC,), note="the API's Swagger UI page"),
    "GET /docs/errors": Policy("-", (Rel.PUBLIC,), note="the error guide that problem types link to"),
    "GET /readyz": Policy("-", (Rel.PUBLIC,)),
    "GET /metrics": Policy("-", (Rel.PUBLIC,), note="served on the operator's network only; no party data"),
}

# The page sessions' relations and the role each admits.
SESSION_ROLES: Final[dict[Rel, Role]] = {Rel.SESSION: Role.THIRD_PARTY, Rel.OPERATOR_SESSION: Role.OPERATOR,
                                         Rel.FIELD_SESSION: Role.FIELD_TECHNICIAN}

# Writes an Idempotency-Key guards: every POST, and PUT (a device write is a new HAN request each
# time; with a key, a retry replays the first answer instead of writing again).
KEYED_METHODS = frozenset({"POST", "PUT"})


class PolicyMissing(RuntimeError):
    pass


def operation_key(methods: set[str] | None, path: str) -> list[str]:
    return [f"{m} {path}" for m in sorted(methods or ()) if m != "HEAD"]


class PolicyRoute(APIRoute):
    """The route class of every router: its operation's policy runs before anything else."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        keys = operation_key(kwargs.get("methods"), path)
        policies = {POLICIES.get(k) for k in keys}
        if None in policies or len(policies) != 1:
            raise PolicyMissing(f"no authorization policy for {', '.join(keys)}: add it to gateway/api/policy.py")
        self.policy: Policy = policies.pop()  # type: ignore[assignment]
        self.operation = keys[0]
        extra = dict(kwargs.get("openapi_extra") or {})
        extra["x-policy"] = self.policy.describe()
        kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)
        # The query parameters the operation declares (its dependencies' too, e.g. paging).
        self.query_names = frozenset(_query_names(self.dependant))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        policy, operation = self.policy, self.operation

        async def guarded(request: Request) -> Response:
            # self.query_names is set once __init__ has built the dependant (after this method).
            return await enforce(request, policy, operation, inner, self.query_names)

        return guarded


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a FastAPI dependant reads, through its sub-dependencies."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def enforce(request: Request, policy: Policy, operation: str,
                  handler: Callable[[Request], Awaitable[Response]], query_names: frozenset[str]) -> Response:
    if policy.allow in ((Rel.PUBLIC,), (Rel.CUSTOMER_LINK,)):
        return await handler(request)  # the link token is checked by the page itself
    svc = request.app.state.services
    if any(r in policy.allow for r in SESSION_ROLES):
        return await _enforce_session(request, svc, policy, handler)
    who, token = await _authenticate(request, svc)
    limit_headers = await _rate_limit(who, svc)
    await _check(request, svc, policy, who)
    _refuse_unknown_query(request, operation, query_names)  # after authorization, like any validation
    request.state.principal = who
    key = request.headers.get("idempotency-key")
    if key is not None and request.method in KEYED_METHODS:
        check_key(key)
        guard = make_guard(token=token, key=key, credential_id=who.credential_id, operation=operation,
                           path=request.url.path, query=request.url.query.encode(), body=await request.body())
        response = await run_idempotent(request, guard, svc.store.engine, handler, svc.clock.now)
        _after_commit(request)
    else:
        response = await handler(request)
    response.headers.update(limit_headers)
    return response


async def _enforce_session(request: Request, svc: Any, policy: Policy,
                           handler: Callable[[Request], Awaitable[Response]]) -> Response:
    """A signed-in page: the principal its session cookie names (a live credential, of an active
    party, checked at every request) must have the page's role — a third party (`SESSION`, rate
    limited as its API calls are) or an operator (`OPERATOR_SESSION`) — then the other relations."""
    who = await page_principal(request, svc, request.app.state.page_keys)
    wanted = next(role for rel, role in SESSION_ROLES.items() if rel in policy.allow)
    if who is None or who.role is not wanted:
        raise SignInRequired()
    limit_headers = await _rate_limit(who, svc)
    rest = tuple(r for r in policy.allow if r not in SESSION_ROLES)
    if rest:
        await _check(request, svc, replace(policy, allow=rest), who)
    request.state.principal = who
    response = await handler(request)
    response.headers.update(limit_headers)
    return response


def _refuse_unknown_query(request: Request, operation: str, query_names: frozenset[str]) -> None:
    """A misspelt filter is an error, not a silently unfiltered list."""
    unknown = sorted(set(request.query_params) - query_names)
    if unknown:
        known = ", ".join(sorted(query_names)) or "none"
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}", errors=[
            FieldError(name, "unknown_parameter", f"not a parameter of {operation}; known: {known}",
                       request.query_params.get(name)) for name in unknown])


def _after_commit(request: Request) -> None:
    """Wake the workers a unit of work could not wake before its commit."""
    for name in ("dispatcher", "provisioning", "meter_read_worker"):
        worker = getattr(request.app.state, name, None)
        if worker is not None:
            worker.poke()


async def _authenticate(request: Request, svc: Any) -> tuple[Principal, str]:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send `Authorization: Bearer <token>`")
    token = token.strip()
    found = await svc.store.principal_for_token(token)
    if found is None:
        raise Unauthorized("the token is unknown, revoked, or its party is suspended")
    return found, token


async def _rate_limit(who: Principal, svc: Any) -> dict[str, str]:
    """Spend one of the party's tokens; the IETF draft's RateLimit-* headers for the answer."""
    if who.role is not Role.THIRD_PARTY or who.party_id is None:
        return {}
    outcome = await svc.rate_limits.take(who.party_id)
    headers = {"RateLimit-Limit": str(outcome.limit), "RateLimit-Remaining": str(outcome.remaining),
               "RateLimit-Reset": str(outcome.reset_seconds)}
    if outcome.retry_after is not None:
        rl = svc.config.rate_limit
        raise RateLimited(f"party {who.party_id} exceeded {rl.requests_per_second:g} requests/s (burst {rl.burst}); "
                          f"retry after {outcome.retry_after} s", outcome.retry_after, headers)
    return headers


async def _check(request: Request, svc: Any, policy: Policy, who: Principal) -> None:
    allow = policy.allow
    if Rel.ANY in allow:
        return
    if Rel.PREMISE in allow or Rel.DEVICE_OWNER in allow:
        await _check_premise(request, svc, policy, who)  # operator, assigned technician or agreement; audited
        if Rel.DEVICE_OWNER in allow and who.role is Role.THIRD_PARTY:
            await _device_owner(request, svc, who)
        return
    if _role_admitted(policy, who):
        return
    if (Rel.PARTY_ITSELF in allow or Rel.OWNER in allow) and who.role is not Role.OPERATOR:
        await _own_row(request, svc, policy, who)  # a technician owns no party's rows: always 404
        return
    _closed_to_role(policy, who)


def _role_admitted(policy: Policy, who: Principal) -> bool:
    return ((who.role is Role.OPERATOR and Rel.OPERATOR in policy.allow)
            or (who.role is Role.THIRD_PARTY and Rel.THIRD_PARTY in policy.allow))


def _closed_to_role(policy: Policy, who: Principal) -> None:
    """Closed to the caller's whole role: the same answer whatever the id."""
    if Rel.OPERATOR in policy.allow and who.role is not Role.OPERATOR:
        raise Forbidden("operators only", code="operator_only")
    raise Forbidden("third parties only (the agreement is the third party's)", code="third_party_only")


async def admit(svc: Any, who: Principal, operation: str) -> dict[str, str]:
    """The policy of `operation` for a caller that reached it through another channel than HTTP (the
    MQTT API): the party's rate limit, then the operation's relations; the RateLimit-* values.
    Only operations whose policy needs no path (no id, no premise in the path) can be reached so."""
    policy = POLICIES[operation]
    if policy.id_param is not None or policy.action is not None or Rel.ANY in policy.allow:
        raise ValueError(f"{operation} is reached by its path only (its policy reads the path)")
    limit_headers = await _rate_limit(who, svc)
    if not _role_admitted(policy, who):
        _closed_to_role(policy, who)
    return limit_headers


async def _own_row(request: Request, svc: Any, policy: Policy, who: Principal) -> None:
    """A third party reaches a row by id only if it is its own; else exactly what an unknown id gets."""
    raw = request.path_params.get(policy.id_param or "", "")
    row_id = ownership.parse_row_id(raw)
    if row_id is not None:
        if Rel.PARTY_ITSELF in policy.allow and policy.resource == "party" and row_id == who.party_id:
            return
        if Rel.OWNER in policy.allow:
            found = await ownership.owner(svc.store.engine, policy.resource, row_id)
            if isinstance(found, ownership.Owned) and found.party_id is not None and found.party_id == who.party_id:
                return
    raise NotFound(f"no {policy.resource.replace('_', ' ')} {raw}", code=f"unknown_{policy.resource}")


async def _check_premise(request: Request, svc: Any, policy: Policy, who: Principal) -> None:
    assert policy.action is not None
    esi_id = request.path_params.get("esi_id", "")
    eui64 = request.path_params.get("eui64")
    if eui64 is None and policy.action is Action.PROVISION_DEVICE:
        eui64 = await _body_eui64(request)  # for the audit entry only
    decision = await authorize(svc.store, who, policy.action, esi_id, now=svc.clock.now(),
                               device_eui64=eui64.upper() if eui64 else None)
    if not decision.visible:
        raise NotFound(f"no premise {esi_id} visible to you", code="unknown_premise")
    if not decision.allowed:
        raise Forbidden(f"{policy.action.value} on {esi_id} refused: {decision.reason}", code=decision.reason)
    request.state.decision = decision


async def _device_owner(request: Request, svc: Any, who: Principal) -> None:
    esi_id, eui64 = request.path_params["esi_id"], request.path_params["eui64"].upper()
    found = await ownership.device_owner(svc.store.engine, esi_id, eui64)
    if not (isinstance(found, ownership.Owned) and found.party_id is not None and found.party_id == who.party_id):
        raise NotFound(f"no device {eui64} at {esi_id}", code="unknown_device")


async def _body_eui64(request: Request) -> str | None:
    try:
        value = json.loads(await request.body()).get("eui64")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) and len(value) <= 23 else None


def policy_table_markdown() -> str:
    """The table as docs/authorization.md prints it."""
    lines = ["| operation | resource | who may | premise action | answers filtered to |",
             "|---|---|---|---|---|"]
    for op, p in POLICIES.items():
        who = "; ".join(r.value for r in p.allow)
        lines.append(f"| `{op}` | {p.resource} | {who} | {p.action.value if p.action else ''} | {p.note} |")
    return "\n".join(lines) + "\n"
