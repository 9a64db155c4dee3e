"""Jinja2 templates for the consent pages and the emails (autoescaped HTML, plain-text mail)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape


def make_templates() -> Environment:
    return Environment(
        loader=PackageLoader("gateway", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
