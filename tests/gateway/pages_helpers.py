"""What the pages' tests share: a browser-like HTTP client (its own cookie jar) and form reading."""

from __future__ import annotations

import html
import re

import httpx

from tests.gateway.conftest import Gateway

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def browser(gateway: Gateway, **headers: str) -> httpx.AsyncClient:
    """A client of its own, like a separate browser: its own cookies, no redirects followed."""
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=20, headers=headers, follow_redirects=False)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF field in:\n{page.text[:2000]}"
    return html.unescape(found.group(1))


def text_of(page: httpx.Response) -> str:
    """The page's text, tags removed (what a reader sees, roughly)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


def customer_link(gateway: Gateway, email: str) -> str:
    """The newest "all my agreements" link mailed to `email`."""
    return gateway.link(gateway.mails_to(email)[-1], "/my/")
