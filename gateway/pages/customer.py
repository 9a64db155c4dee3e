"""The customer's page: every agreement made with their e-mail address and every HAN device at the
premises where it is the customer contact; they can end an active agreement there.

No account: a link in every agreement email (and from the "manage my agreements" form, which mails
it) is the authority — a Fernet token sealing the address and its date (gateway/pages/keys.py), so it
cannot be made up, altered or used after `pages.customer_link_days`. The form answers the same for
every address, and the lookup and the mail happen after the answer is sent, so neither the page nor
its timing tells whether an address is on record.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from gateway.agreements import EMAIL_RE
from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.pages.i18n import choose_language
from gateway.pages.my_data import customer_email, default_period
from gateway.pages.render import PageRefused, redirect, render, require_csrf, tr

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

MAX_EMAIL = 320  # RFC 5321's limit on a forward path, as the schema's column


@router.get("/my")
async def request_form(request: Request) -> Response:
    return render(request, "my_request.html", title=tr(request, "Manage my agreements"))


@router.post("/my")
async def request_link(request: Request, svc: Svc) -> Response:
    form = await require_csrf(request)
    email = form.get("email", "").strip()
    title = tr(request, "Manage my agreements")
    if not EMAIL_RE.match(email) or len(email) > MAX_EMAIL:
        error = tr(request, "Enter an email address such as name@example.com (at most %(limit)s characters).",
                        limit=MAX_EMAIL)
        return render(request, "my_request.html", 400, title=title, email=email[:MAX_EMAIL], error=error)
    lang = choose_language(request)
    answer = render(request, "notice.html", title=tr(request, "Check your email"), message=tr(
        request, "If %(email)s is on record with us, we sent it a link to your page. The link works for "
        "%(days)s days.", email=email, days=svc.config.pages.customer_link_days))
    # After the answer: the same page and the same time whether or not the address is known.
    answer.background = BackgroundTask(svc.agreements.send_customer_link, email, lang)
    return answer


@router.get("/my/{link}")
async def customer_page(request: Request, link: str, svc: Svc,
                        ended: int | None = Query(default=None, ge=1, le=2**31 - 1)) -> Response:
    email = customer_email(request, svc, link)
    agreements = (await svc.store.list_agreements(customer_email=email, limit=500)).items
    premises = await svc.store.premises_of_customer(email)
    devices = {p.esi_id: (await svc.store.list_devices(p.esi_id, limit=500)).items for p in premises}
    party_ids = {a.party_id for a in agreements} | {d.party_id for ds in devices.values() for d in ds if d.party_id}
    parties = {}
    for party_id in sorted(party_ids):
        party = await svc.store.get_party(party_id)
        parties[party_id] = party.name if party else f"#{party_id}"
    shown_ended = ended if any(a.id == ended and a.ended_at for a in agreements) else None
    first, last = default_period(svc.clock.now())
    return render(request, "my.html", title=tr(request, "Your agreements and devices"), email=email,
                  agreements=sorted(agreements, key=lambda a: a.id, reverse=True), premises=premises,
                  devices=devices, parties=parties, base=f"/my/{link}", ended=shown_ended,
                  data_from=first.isoformat(), data_to=last.isoformat())


@router.post("/my/{link}/agreements/{agreement_id}/terminate")
async def terminate(request: Request, link: str, agreement_id: int, svc: Svc) -> Response:
    await require_csrf(request)
    email = customer_email(request, svc, link)
    ended = await svc.agreements.terminate_for_customer(agreement_id, email)
    if ended is None:  # not theirs, or not active: one answer, which tells nothing about others'
        raise PageRefused(404, tr(request, "Nothing to end"), tr(
            request, "Agreement number %(id)s is not an active agreement of yours. Nothing was changed.",
            id=agreement_id))
    return redirect(request, f"/my/{link}?ended={ended.id}")
