"""The third party's dashboard: sign in with an API token, then its agreements by state (resend,
renew, terminate), the premises its agreements cover with the devices it provisioned there, its
HAN requests with counts by state and a chart of the last 24 hours, and its webhooks with their
dead letters (redeliver).

The token is POSTed once and exchanged for the session cookie, which holds the credential's id
(sealed), never the token; it is never in a URL. Every page and action goes through the operation's
policy (`Rel.SESSION`, gateway/api/policy.py): the credential must still be live at each request,
the party's rate limit applies, and an agreement action needs the agreement to be the party's own —
the same domain functions as the REST API's resend, renew and terminate.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.domain.model import AgreementState, PremiseClass, Role, allowed_durations
from gateway.domain.records import Party, Principal
from gateway.errors import GatewayError
from gateway.pages.chart import bar_chart, hour_edges
from gateway.pages.render import PageRefused, page_session, redirect, render, require_csrf, tr, use_session
from gateway.pages.sessions import PAGE_ROLES
from gateway.store import han_requests
from gateway.store import webhooks as webhook_store

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

MAX_TOKEN = 200
STATE_ORDER = [s.value for s in AgreementState]
LIST_LIMIT = 500  # rows of a list on one page; the REST API pages further
DELIVERIES_SHOWN = 200  # a request's deliveries on its page; GET /v1/han-requests/{id}/deliveries pages on
DEAD_SHOWN = 50  # dead letters shown per webhook (oldest first); "redeliver all" takes every one


def _who(request: Request) -> Principal:
    who: Principal = request.state.principal  # set by the policy (Rel.SESSION)
    return who


async def _party(request: Request, svc: Svc) -> Party:
    who = _who(request)
    assert who.party_id is not None
    party = await svc.store.get_party(who.party_id)
    if party is None:
        raise PageRefused(404, tr(request, "Not found"), tr(request, "Your party is gone."))
    return party


@router.get("/dashboard/sign-in")
async def sign_in_form(request: Request) -> Response:
    return render(request, "sign_in.html", title=tr(request, "Sign in to the dashboard"))


@router.post("/dashboard/sign-in")
async def sign_in(request: Request, svc: Svc) -> Response:
    form = await require_csrf(request)
    token = form.get("token", "").strip()
    who = await svc.store.principal_for_token(token) if 0 < len(token) <= MAX_TOKEN else None
    if who is None or who.role not in PAGE_ROLES or who.credential_id is None:
        # One message for unknown, revoked, suspended and technicians' tokens.
        return render(request, "sign_in.html", 401, title=tr(request, "Sign in to the dashboard"),
                      error=tr(request, "This token is not a live API token of a third party, an operator or a "
                                       "field technician."))
    use_session(request, page_session(request).signed_in(who.credential_id))
    home = {Role.OPERATOR: "/operator", Role.FIELD_TECHNICIAN: "/field"}.get(who.role, "/dashboard")
    return redirect(request, home)


@router.post("/dashboard/sign-out")
async def sign_out(request: Request) -> Response:
    await require_csrf(request)
    use_session(request, page_session(request).signed_out())
    return redirect(request, "/dashboard/sign-in")


@router.get("/dashboard")
async def dashboard(request: Request, svc: Svc) -> Response:
    party = await _party(request, svc)
    who = _who(request)
    now = svc.clock.now()
    ended_since = now - timedelta(days=svc.config.agreements.visibility_days)
    agreements = (await svc.store.list_agreements(party_id=party.id, ended_since=ended_since,
                                                  limit=LIST_LIMIT)).items
    by_state: dict[str, list[object]] = defaultdict(list)
    for a in sorted(agreements, key=lambda a: a.id, reverse=True):
        by_state[a.state.value].append(a)
    premises = (await svc.store.list_premises(visible_to=who, now=now, limit=LIST_LIMIT)).items
    devices = {p.esi_id: (await svc.store.list_devices(p.esi_id, provisioned_by=party.id, limit=LIST_LIMIT)).items
               for p in premises}
    counts = await han_requests.party_request_counts(svc.store.engine, party.id)
    kinds = sorted({k for k, _s in counts})
    states = sorted({s for _k, s in counts})
    recent = await han_requests.recent_requests(svc.store.engine, party.id, 20)
    edges = hour_edges(now)
    chart = bar_chart(edges, await han_requests.party_activity(svc.store.engine, party.id, edges))
    hooks = await webhook_store.list_webhooks(svc.store.engine, party.id, after=0, limit=50)
    dead = {h.id: await webhook_store.list_dead_letters(svc.store.engine, h.id, limit=DEAD_SHOWN + 1) for h in hooks}
    return render(request, "dashboard.html", title=tr(request, "Dashboard of %(party)s", party=party.name),
                  party=party, by_state=[(s, by_state[s]) for s in STATE_ORDER if by_state.get(s)],
                  premises=premises, devices=devices, counts=counts, kinds=kinds, states=states,
                  recent=recent, chart=chart, hooks=hooks, dead=dead, dead_shown=DEAD_SHOWN,
                  done=request.query_params.get("done", ""),
                  # Every duration some premise allows; the renewal itself checks the agreement's premises.
                  durations=sorted(allowed_durations(PremiseClass.LARGE_COMMERCIAL)))


@router.get("/dashboard/requests/{request_id}")
async def request_page(request: Request, request_id: int, svc: Svc) -> Response:
    """One of the party's requests (the policy checked it is its own): its premises and devices by
    state and each delivery with its devices' answers; live with JavaScript (gateway/static/live.js)."""
    row = await han_requests.get_request(svc.store.engine, request_id)
    if row is None:
        raise PageRefused(404, tr(request, "Not found"), tr(request, "No request %(id)s.", id=request_id))
    summary = await han_requests.summarize(svc.store.engine, request_id)
    items = await han_requests.list_deliveries(svc.store.engine, request_id, after=0, limit=DELIVERIES_SHOWN)
    return render(request, "request.html", title=tr(request, "Request %(id)s", id=request_id), row=row,
                  summary=summary, items=items, shown=DELIVERIES_SHOWN)


async def _act(request: Request, svc: Svc, agreement_id: int, action: str) -> Response:
    form = await require_csrf(request)
    party = await _party(request, svc)
    try:
        if action == "resend":
            await svc.agreements.resend(agreement_id, party)
        elif action == "renew":
            months = form.get("duration_months", "")
            if not months.isdigit() or not 1 <= int(months) <= 120:
                raise PageRefused(400, tr(request, "Renewal not sent"), tr(
                    request, "duration_months is %(value)r; a whole number of months from 1 to 120.",
                    value=months[:12]))
            await svc.agreements.renew(agreement_id, party, int(months))
        else:
            await svc.agreements.terminate_by_party(agreement_id, party)
    except GatewayError as exc:  # not resendable, not renewable, already ended…: said on the page
        raise PageRefused(exc.status, tr(request, "Nothing was changed"), str(exc)) from None
    return redirect(request, f"/dashboard?done={action}-{agreement_id}#agreements")


@router.post("/dashboard/agreements/{agreement_id}/resend")
async def resend(request: Request, agreement_id: int, svc: Svc) -> Response:
    return await _act(request, svc, agreement_id, "resend")


@router.post("/dashboard/agreements/{agreement_id}/renew")
async def renew(request: Request, agreement_id: int, svc: Svc) -> Response:
    return await _act(request, svc, agreement_id, "renew")


@router.post("/dashboard/agreements/{agreement_id}/terminate")
async def terminate(request: Request, agreement_id: int, svc: Svc) -> Response:
    return await _act(request, svc, agreement_id, "terminate")


async def _redeliver(request: Request, svc: Svc, webhook_id: int, event_id: int | None) -> Response:
    await require_csrf(request)
    # The policy let the session in only for its own webhook (Rel.OWNER): the API's redelivery.
    count = await webhook_store.redeliver(svc.store.engine, webhook_id, svc.clock.now(), event_id)
    if event_id is not None and count == 0:
        raise PageRefused(404, tr(request, "Nothing was changed"), tr(
            request, "Event %(event)s is not a dead letter of webhook %(webhook)s.", event=event_id,
            webhook=webhook_id))
    return redirect(request, f"/dashboard?done=redelivered-{count}#webhooks")


@router.post("/dashboard/webhooks/{webhook_id}/redeliver")
async def redeliver_all(request: Request, webhook_id: int, svc: Svc) -> Response:
    return await _redeliver(request, svc, webhook_id, None)


@router.post("/dashboard/webhooks/{webhook_id}/dead-letters/{event_id}/redeliver")
async def redeliver_one(request: Request, webhook_id: int, event_id: int, svc: Svc) -> Response:
    return await _redeliver(request, svc, webhook_id, event_id)
