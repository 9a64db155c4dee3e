"""The language switch every page carries: a small form that stores the choice in a cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.policy import PolicyRoute
from gateway.pages.i18n import LANG_COOKIE, LANGUAGES
from gateway.pages.render import PageRefused, local_path, redirect, require_csrf, tr

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

YEAR = 365 * 86400


@router.post("/language")
async def choose(request: Request) -> Response:
    form = await require_csrf(request)
    lang = form.get("lang", "")
    if lang not in LANGUAGES:
        raise PageRefused(400, tr(request, "Unknown language"), tr(
            request, "lang is %(value)r; choose one of: %(known)s.", value=lang[:20], known=", ".join(LANGUAGES)))
    answer = redirect(request, local_path(form.get("next")))
    # SameSite=Lax, unlike the session: a preference, not an authority, and it must reach the
    # page a customer opens from a link in their email (a cross-site navigation).
    secure = request.app.state.services.config.server.public_url.startswith("https://")
    answer.set_cookie(LANG_COOKIE, lang, max_age=YEAR, path="/", httponly=True, secure=secure, samesite="lax")
    return answer
