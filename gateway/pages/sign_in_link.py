"""A third party's dashboard sign-in by a one-time link, besides the API token: the sign-in page's
second form takes an e-mail address; if it is an active party's contact address, a link is mailed
there (through the mail queue, gateway/mail_sender.py). The link works once, for
`[pages] sign_in_link_minutes`, and only its hash is stored (gateway/store/sign_in_links.py).

Opening the link (GET) shows a button and uses nothing — mail scanners and link previews open
links — and the button's POST (CSRF-protected like every form) uses it and starts the session
(the same cookie as a token sign-in: HttpOnly, SameSite=Strict, Secure behind TLS). The form
answers the same for every address, and the lookup and the mail happen after the answer is sent,
so neither the page nor its timing tells whether an address is a party's.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from gateway.agreements import EMAIL_RE
from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.pages.i18n import choose_language
from gateway.pages.render import PageRefused, page_session, redirect, render, require_csrf, tr, use_session
from gateway.store import sign_in_links

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)
log = logging.getLogger(__name__)

MAX_EMAIL = 320
MAX_TOKEN = 200
SUBJECTS = {"en": "Your sign-in link to the HAN gateway dashboard",
            "es": "Su enlace para iniciar sesión en el panel de la pasarela HAN"}


async def send_sign_in_link(svc: Svc, email: str, lang: str) -> bool:
    """Mail a one-time link to `email` if it is an active party's contact address; False otherwise."""
    party_id = await sign_in_links.active_party_by_contact(svc.store.engine, email)
    if party_id is None:
        return False
    minutes = svc.config.pages.sign_in_link_minutes
    token = await sign_in_links.issue(svc.store.engine, party_id, svc.clock.now(), timedelta(minutes=minutes))
    if token is None:
        log.info("sign-in link for party %s not sent: it has unused links already", party_id)
        return False
    template = "sign_in_link.es.txt" if lang == "es" else "sign_in_link.txt"
    text = svc.templates.get_template(template).render(
        link=f"{svc.config.server.public_url}/dashboard/sign-in/link/{token}", minutes=minutes)
    await svc.agreements.mail_sender.send(to=email, subject=SUBJECTS[lang if lang in SUBJECTS else "en"], text=text)
    return True


@router.post("/dashboard/sign-in/link")
async def request_link(request: Request, svc: Svc) -> Response:
    form = await require_csrf(request)
    email = form.get("email", "").strip()
    title = tr(request, "Sign in to the dashboard")
    if not EMAIL_RE.match(email) or len(email) > MAX_EMAIL:
        return render(request, "sign_in.html", 400, title=title, email=email[:MAX_EMAIL], email_error=tr(
            request, "Enter an email address such as name@example.com (at most %(limit)s characters).",
            limit=MAX_EMAIL))
    answer = render(request, "notice.html", title=tr(request, "Check your email"), message=tr(
        request, "If %(email)s is the contact address of a third party, we sent it a sign-in link. The link "
        "works once, for %(minutes)s minutes.", email=email, minutes=svc.config.pages.sign_in_link_minutes))
    # After the answer: the same page and the same time whether or not the address is a party's.
    answer.background = BackgroundTask(send_sign_in_link, svc, email, choose_language(request))
    return answer


def _check_token(request: Request, token: str) -> None:
    if not 0 < len(token) <= MAX_TOKEN:
        raise _not_valid(request)


def _not_valid(request: Request) -> PageRefused:
    return PageRefused(410, tr(request, "Link not valid"), tr(
        request, "This sign-in link was used already, is too old, or is not one we sent. Ask for a new one "
        "on the sign-in page (/dashboard/sign-in)."))


@router.get("/dashboard/sign-in/link/{token}")
async def confirm(request: Request, token: str) -> Response:
    _check_token(request, token)
    return render(request, "sign_in_link.html", title=tr(request, "Sign in to the dashboard"),
                  action=f"/dashboard/sign-in/link/{token}")


@router.post("/dashboard/sign-in/link/{token}")
async def use_link(request: Request, token: str, svc: Svc) -> Response:
    await require_csrf(request)
    _check_token(request, token)
    redeemed = await sign_in_links.redeem(svc.store.engine, token, svc.clock.now())
    if redeemed is None:
        raise _not_valid(request)
    use_session(request, page_session(request).signed_in_by_link(redeemed.link_id))
    return redirect(request, "/dashboard")
