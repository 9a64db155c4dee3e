"""Languages of the pages: English and Spanish, from gettext catalogues made with Babel.

The language is the one the visitor chose with the switch (cookie `hangw_lang`), else the best
match of the browser's Accept-Language (Babel's negotiation), else English. Catalogues live in
gateway/locale/<lang>/LC_MESSAGES/messages.po; the compiled .mo files are committed next to them
(so `pip install -e .` needs no build step) and a test keeps them equal to the .po files.
"""

from __future__ import annotations

import functools
import gettext
from datetime import UTC
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.rendering import TEMPLATES_DIR

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
LANGUAGES = ("en", "es")
DEFAULT = "en"
LANG_COOKIE = "hangw_lang"
NAMES = {"en": "English", "es": "Español"}  # each in its own language, as a switch shows them


def _accept_language(header: str) -> list[str]:
    """The header's languages, best first (q-values; a malformed part is skipped)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and q > 0:
            ranked.append((-q, i, tag.strip()))
    return [tag.replace("-", "_") for _q, _i, tag in sorted(ranked)]


def choose_language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    wanted = _accept_language(request.headers.get("accept-language", ""))
    found = Locale.negotiate(wanted, list(LANGUAGES), sep="_") if wanted else None
    return found.language if found is not None and found.language in LANGUAGES else DEFAULT


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT:
        return gettext.NullTranslations()  # the source strings are English
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang])


def tr_in(lang: str, message: str, **values: object) -> str:
    """`message` in `lang` (the catalogues'), with its %(name)s values: for text made outside a
    request (agreement emails, their subjects). Extracted by scripts/i18n (keyword tr_in)."""
    text = translations(lang if lang in LANGUAGES else DEFAULT).gettext(message)
    return text % values if values else text


@functools.cache
def page_templates(lang: str) -> Environment:
    """The pages' Jinja environment in one language (one per language, made once)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["date"] = lambda value: "" if value is None else format_date(value, "medium", locale=lang)
    env.filters["datetime"] = lambda value: "" if value is None else format_datetime(
        value, "medium", tzinfo=UTC, locale=lang) + " UTC"
    return env
