"""The customer's pages: consent (accept/reject) and termination, reached from email links.
Server-rendered HTML, no JavaScript, no account: the unguessable single-use token in the link is
the customer's authority. A spent, unknown or expired link gets one plain explanation.

In the customer's language: the one the invitation named (`customer_language`, "en" or "es"),
unless the visitor chose another with the pages' language switch (cookie `hangw_lang`); a link
that is not valid any more is answered in the browser's language (gateway/pages/i18n.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from babel.dates import format_date, format_datetime
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from gateway.agreements import USAGE_TIME_ZONE, interval_words, purpose, scopes_text
from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.domain.records import Agreement
from gateway.pages.i18n import LANG_COOKIE, LANGUAGES, choose_language, page_templates, tr_in

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def _lang(request: Request, agreement: Agreement | None) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return agreement.customer_language if agreement is not None else choose_language(request)


def _page(lang: str, template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = page_templates(lang).get_template(template).render(lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _gone(request: Request) -> HTMLResponse:
    lang = _lang(request, None)
    return _page(lang, "message.html", 404, title=tr_in(lang, "Link not valid"), message=tr_in(
        lang, "This link is no longer valid: it was used already, it expired, or the request was withdrawn. "
        "Nothing was changed."))


# "December 03, 2026" in English (as before the pages spoke Spanish), "3 de diciembre de 2026" in Spanish.
DAY = {"en": "MMMM dd, y", "es": "d 'de' MMMM 'de' y"}
MOMENT = {"en": "MMMM dd, y HH:mm", "es": "d 'de' MMMM 'de' y, HH:mm"}


def _day(moment: datetime | None, lang: str) -> str:
    return "" if moment is None else format_date(moment, DAY[lang], locale=lang)


@router.get("/consent/{token}", response_class=HTMLResponse)
async def consent_page(request: Request, token: str, svc: Svc) -> HTMLResponse:
    view = await svc.agreements.consent_view(token)
    if view is None:
        return _gone(request)
    lang = _lang(request, view.agreement)
    return _page(lang, "consent.html", title=tr_in(lang, "%(party)s asks for your consent", party=view.party.name),
                 agreement=view.agreement, party=view.party, renewal=view.renewal,
                 months=view.months, scopes_text=scopes_text(view.agreement.scopes, lang),
                 expires=_day(view.agreement.consent_expires_at, lang), action=f"/consent/{token}",
                 purpose=purpose(view.agreement, lang), data=_data_words(view.agreement, lang))


def _data_words(agreement: Agreement, lang: str) -> dict[str, str]:
    """An Energy Data agreement's terms as the consent page prints them (Central Time)."""
    data = agreement.data
    if data is None:
        return {}
    words = {"interval": interval_words(data.interval, lang)}
    if data.period_start is not None and data.period_end is not None:
        for key, moment in (("from", data.period_start), ("to", data.period_end)):
            words[key] = format_datetime(moment, MOMENT[lang], tzinfo=USAGE_TIME_ZONE, locale=lang)
    return words


@router.post("/consent/{token}", response_class=HTMLResponse)
async def consent_decision(request: Request, token: str, decision: Annotated[str, Form()], svc: Svc) -> HTMLResponse:
    if decision not in ("accept", "reject"):
        lang = _lang(request, None)
        return _page(lang, "message.html", 400, title=tr_in(lang, "Choose accept or reject"),
                     message=tr_in(lang, "The form sent neither accept nor reject. Nothing was changed."))
    result = await svc.agreements.decide(token, decision == "accept")
    if result is None:
        return _gone(request)
    agreement, outcome = result
    lang = _lang(request, agreement)
    party = await svc.store.get_party(agreement.party_id)
    name = party.name if party else tr_in(lang, "the company")
    ends = _day(agreement.ends_at, lang)
    messages = {
        "accepted": tr_in(lang, "You accepted. %(party)s may now %(purpose)s until %(ends)s. We sent you a "
                          "confirmation email with a link to end the agreement at any time.",
                          party=name, purpose=purpose(agreement, lang), ends=ends),
        "renewed": tr_in(lang, "You renewed your agreement with %(party)s until %(ends)s.", party=name, ends=ends),
        "rejected": tr_in(lang, "You rejected the request. %(party)s gets no access.", party=name),
        "renewal_declined": tr_in(lang, "You declined the renewal. Your agreement with %(party)s ends on %(ends)s.",
                                  party=name, ends=ends),
    }
    titles = {"accepted": tr_in(lang, "Consent given"), "renewed": tr_in(lang, "Agreement renewed"),
              "rejected": tr_in(lang, "Request rejected"), "renewal_declined": tr_in(lang, "Renewal declined")}
    return _page(lang, "message.html", title=titles[outcome], message=messages[outcome])


@router.get("/agreements/terminate/{token}", response_class=HTMLResponse)
async def termination_page(request: Request, token: str, svc: Svc) -> HTMLResponse:
    found = await svc.agreements.termination_view(token)
    if found is None:
        return _gone(request)
    agreement, party = found
    lang = _lang(request, agreement)
    return _page(lang, "terminate.html", title=tr_in(lang, "End your agreement"), agreement=agreement,
                 party=party, scopes_text=scopes_text(agreement.scopes, lang), purpose=purpose(agreement, lang),
                 ends=_day(agreement.ends_at, lang), action=f"/agreements/terminate/{token}")


@router.post("/agreements/terminate/{token}", response_class=HTMLResponse)
async def terminate(request: Request, token: str, svc: Svc) -> HTMLResponse:
    ended = await svc.agreements.terminate_by_customer(token)
    if ended is None:
        return _gone(request)
    lang = _lang(request, ended)
    return _page(lang, "message.html", title=tr_in(lang, "Agreement ended"),
                 message=tr_in(lang, "Agreement number %(id)s has ended. Access stopped immediately.", id=ended.id))
