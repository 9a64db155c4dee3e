"""Rendering a page: its language, its session (set on the answer), its security headers; the pages'
refusals (a bad CSRF token, a link that is not valid) as HTML in the visitor's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.pages.i18n import choose_language, page_templates, translations
from gateway.pages.keys import PageKeys
from gateway.pages.sessions import CSRF_FIELD, PageSession, csrf_valid, read_session, session_for, write_session

# The page may not be framed (clickjacking), cached or leak its link (customer links carry a token)
# through Referer; it loads nothing from elsewhere and runs no script but the gateway's own files
# (gateway/static: the request page's live updates), which fetch from the gateway only.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class PageRefused(Exception):
    """A page answer that is not the page: rendered as `notice.html` with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class SignInRequired(Exception):
    """A dashboard page without a live sign-in: the browser goes to the sign-in form."""


def keys(request: Request) -> PageKeys:
    found: PageKeys = request.app.state.page_keys
    return found


def _secure(request: Request) -> bool:
    return bool(request.app.state.services.config.server.public_url.startswith("https://"))


def _now(request: Request) -> Any:
    return request.app.state.services.clock.now()


def page_session(request: Request) -> PageSession:
    """The session this request renders with (read once per request)."""
    found: PageSession | None = getattr(request.state, "page_session", None)
    if found is None:
        found = session_for(request, keys(request), _now(request))
        request.state.page_session = found
    return found


def use_session(request: Request, session: PageSession) -> None:
    """Answer with this session from now on (sign-in, sign-out)."""
    request.state.page_session = session


def language(request: Request) -> str:
    return choose_language(request)


def tr(request: Request, message: str, **values: object) -> str:
    text = translations(language(request)).gettext(message)
    return text % values if values else text


def finish(request: Request, response: Response) -> Response:
    response.headers.update(HEADERS)
    session = page_session(request)
    if session.fresh:
        write_session(response, session, keys(request), _now(request), secure=_secure(request))
    return response


def render(request: Request, template: str, status: int = 200, **context: object) -> Response:
    lang = language(request)
    session = page_session(request)
    html = page_templates(lang).get_template(f"pages/{template}").render(
        lang=lang, csrf_token=session.csrf, csrf_field=CSRF_FIELD, here=request.url.path, **context)
    return finish(request, HTMLResponse(html, status_code=status))


def redirect(request: Request, to: str) -> Response:
    """303 See Other after a form (POST/redirect/GET: a reload does not post again)."""
    return finish(request, RedirectResponse(to, status_code=303))


async def require_csrf(request: Request) -> dict[str, str]:
    """The form's fields, if its CSRF token matches the session cookie's; else PageRefused (403)."""
    form = await request.form()
    session = read_session(request, keys(request), _now(request))
    if not csrf_valid(session, form.get(CSRF_FIELD)):
        raise PageRefused(403, tr(request, "Form expired"), tr(
            request, "This form was not sent from this site's page, or the page is too old. "
            "Nothing was changed. Open the page again and resend the form."))
    return {k: v for k, v in form.items() if isinstance(v, str)}


def local_path(value: str | None, default: str = "/") -> str:
    """`value` if it is a path on this site (no scheme, no host, no //), else `default`:
    a form's `next` must not send the browser elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else default


def install(app: FastAPI) -> None:
    """The pages' refusals as HTML pages."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageRefused)
        return render(request, "notice.html", exc.status, title=exc.title, message=exc.message)

    async def sign_in(request: Request, exc: Exception) -> Response:
        return redirect(request, "/dashboard/sign-in")

    app.add_exception_handler(PageRefused, refused)
    app.add_exception_handler(SignInRequired, sign_in)
