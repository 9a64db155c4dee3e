"""The customer's pages: consent (accept/reject) and termination, reached from email links.

Server-rendered HTML, no JavaScript, no account: the unguessable single-use token in the link is
the customer's authority. A spent, unknown or expired link gets one plain explanation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from gateway.agreements import INTERVAL_WORDS, USAGE_TIME_ZONE, purpose, scopes_text
from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.domain.records import Agreement

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

GONE = ("This link is no longer valid: it was used already, it expired, or the request was "
        "withdrawn. Nothing was changed.")
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def _page(svc: Svc, template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = svc.templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


@router.get("/consent/{token}", response_class=HTMLResponse)
async def consent_page(token: str, svc: Svc) -> HTMLResponse:
    view = await svc.agreements.consent_view(token)
    if view is None:
        return _page(svc, "message.html", 404, title="Link not valid", message=GONE)
    expires = view.agreement.consent_expires_at
    return _page(svc, "consent.html", title=f"{view.party.name} asks for your consent",
                 agreement=view.agreement, party=view.party, renewal=view.renewal,
                 months=view.months, scopes_text=scopes_text(view.agreement.scopes),
                 expires=f"{expires:%B %d, %Y}", action=f"/consent/{token}",
                 purpose=purpose(view.agreement), data=_data_words(view.agreement))


def _data_words(agreement: Agreement) -> dict[str, str]:
    """An Energy Data agreement's terms as the consent page prints them (Central Time)."""
    data = agreement.data
    if data is None:
        return {}
    words = {"interval": INTERVAL_WORDS[data.interval]}
    if data.period_start is not None and data.period_end is not None:
        words["from"] = f"{data.period_start.astimezone(USAGE_TIME_ZONE):%B %d, %Y %H:%M}"
        words["to"] = f"{data.period_end.astimezone(USAGE_TIME_ZONE):%B %d, %Y %H:%M}"
    return words


@router.post("/consent/{token}", response_class=HTMLResponse)
async def consent_decision(token: str, decision: Annotated[str, Form()], svc: Svc) -> HTMLResponse:
    if decision not in ("accept", "reject"):
        return _page(svc, "message.html", 400, title="Choose accept or reject",
                     message="The form sent neither accept nor reject. Nothing was changed.")
    result = await svc.agreements.decide(token, decision == "accept")
    if result is None:
        return _page(svc, "message.html", 404, title="Link not valid", message=GONE)
    agreement, outcome = result
    party = await svc.store.get_party(agreement.party_id)
    name = party.name if party else "the company"
    ends = f"{agreement.ends_at:%B %d, %Y}" if agreement.ends_at else ""
    messages = {
        "accepted": f"You accepted. {name} may now {purpose(agreement)} until {ends}. We sent "
                    "you a confirmation email with a link to end the agreement at any time.",
        "renewed": f"You renewed your agreement with {name} until {ends}.",
        "rejected": f"You rejected the request. {name} gets no access.",
        "renewal_declined": f"You declined the renewal. Your agreement with {name} ends on "
                            f"{ends}.",
    }
    titles = {"accepted": "Consent given", "renewed": "Agreement renewed",
              "rejected": "Request rejected", "renewal_declined": "Renewal declined"}
    return _page(svc, "message.html", title=titles[outcome], message=messages[outcome])


@router.get("/agreements/terminate/{token}", response_class=HTMLResponse)
async def termination_page(token: str, svc: Svc) -> HTMLResponse:
    found = await svc.agreements.termination_view(token)
    if found is None:
        return _page(svc, "message.html", 404, title="Link not valid", message=GONE)
    agreement, party = found
    return _page(svc, "terminate.html", title="End your agreement", agreement=agreement,
                 party=party, scopes_text=scopes_text(agreement.scopes), purpose=purpose(agreement),
                 ends=f"{agreement.ends_at:%B %d, %Y}", action=f"/agreements/terminate/{token}")


@router.post("/agreements/terminate/{token}", response_class=HTMLResponse)
async def terminate(token: str, svc: Svc) -> HTMLResponse:
    ended = await svc.agreements.terminate_by_customer(token)
    if ended is None:
        return _page(svc, "message.html", 404, title="Link not valid", message=GONE)
    return _page(svc, "message.html", title="Agreement ended",
                 message=f"Agreement number {ended.id} has ended. Access stopped immediately.")
