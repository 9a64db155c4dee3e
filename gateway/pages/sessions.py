"""The page session: one signed, encrypted cookie holding a CSRF token and, on the dashboard, the
credential the third party signed in with (never the token itself).

A dashboard sign-in by a one-time link holds the link's id instead (the link is used up; the session
lives while the party is active).

Cookie: HttpOnly, SameSite=Strict, Secure when the public URL is https, Path=/. Every form carries
the session's CSRF token in a hidden field; a POST whose field does not match its cookie's is
refused (403) before anything else happens. A session older than `pages.session_hours` is not
read (the Fernet timestamp), so a stolen cookie stops working, and a sign-in follows the credential:
a revoked token or a suspended party ends every session made with it at the next request.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from fastapi import Request, Response

from gateway.domain.model import Role
from gateway.domain.records import Principal
from gateway.pages.keys import PageKeys
from gateway.store import sign_in_links

COOKIE = "hangw_session"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class PageSession:
    csrf: str
    credential_id: int | None = None  # the signed-in third party's credential (dashboard)
    link_id: int | None = None  # or the one-time sign-in link it used (gateway/store/sign_in_links.py)
    fresh: bool = False  # made for this request: the cookie must be set

    def signed_in(self, credential_id: int) -> PageSession:
        # A new CSRF token at sign-in: one planted before sign-in is worth nothing after it.
        return PageSession(secrets.token_urlsafe(32), credential_id, fresh=True)

    def signed_in_by_link(self, link_id: int) -> PageSession:
        return PageSession(secrets.token_urlsafe(32), None, link_id, fresh=True)

    def signed_out(self) -> PageSession:
        return PageSession(secrets.token_urlsafe(32), None, fresh=True)


def new_session() -> PageSession:
    return PageSession(secrets.token_urlsafe(32), None, fresh=True)


def read_session(request: Request, keys: PageKeys, now: datetime) -> PageSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(keys.session.decrypt_at_time(raw.encode("ascii", errors="replace"),
                                                       keys.session_seconds, int(now.timestamp())))
        csrf, cred, link = data["csrf"], data.get("cred"), data.get("link")
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None  # altered, expired or from another key: as if there were none
    if not isinstance(csrf, str) or not all(v is None or isinstance(v, int) for v in (cred, link)):
        return None
    return PageSession(csrf, cred, link)


def session_for(request: Request, keys: PageKeys, now: datetime) -> PageSession:
    """The request's session, or a new one (which the answer sets)."""
    return read_session(request, keys, now) or new_session()


def write_session(response: Response, session: PageSession, keys: PageKeys, now: datetime, *,
                  secure: bool) -> None:
    data = {"csrf": session.csrf, "cred": session.credential_id, "link": session.link_id}
    value = keys.session.encrypt_at_time(json.dumps(data).encode(), int(now.timestamp())).decode()
    response.set_cookie(COOKIE, value, max_age=keys.session_seconds, path="/", httponly=True, secure=secure,
                        samesite="strict")


def csrf_valid(session: PageSession | None, submitted: object) -> bool:
    return (session is not None and isinstance(submitted, str) and bool(submitted)
            and hmac.compare_digest(session.csrf.encode(), submitted.encode()))


PAGE_ROLES = (Role.THIRD_PARTY, Role.OPERATOR, Role.FIELD_TECHNICIAN)  # who may sign in to the pages


async def page_principal(request: Request, svc: Any, keys: PageKeys) -> Principal | None:
    """Whom a request's session is signed in as, if its credential (or, signed in by a one-time
    link, its party) is still live."""
    session = read_session(request, keys, svc.clock.now())
    if session is None:
        return None
    if session.link_id is not None:
        party_id = await sign_in_links.party_of_link(svc.store.engine, session.link_id)
        return Principal(Role.THIRD_PARTY, party_id=party_id) if party_id is not None else None
    if session.credential_id is None:
        return None
    who: Principal | None = await svc.store.principal_for_credential(session.credential_id)
    if who is None or who.role not in PAGE_ROLES or (who.role is Role.THIRD_PARTY and who.party_id is None):
        return None
    return who
