"""The error guide (docs/errors.md) served at /docs/errors, so every problem's `type`
(`/docs/errors#<code>`) resolves on the gateway itself, also on an isolated operator network.

The page is rendered with markdown-it-py; each `## code` heading gets `id="code"`, the anchor the
problem types name. The wheel carries the file as gateway/templates/errors.md (a symlink to
docs/errors.md in the source tree).
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from gateway.api.policy import PolicyRoute
from gateway.api.problems import PROBLEM_DOCS_PATH

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)


def guide_text() -> str:
    return resources.files("gateway").joinpath("templates/errors.md").read_text(encoding="utf-8")


@functools.cache
def render_guide() -> str:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(guide_text())
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            token.attrSet("id", tokens[i + 1].content.strip().strip("`"))
    body = md.renderer.render(tokens, md.options, {})
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape('HAN gateway: errors')}</title></head><body>{body}</body></html>")


@router.get(PROBLEM_DOCS_PATH)
async def errors_page() -> HTMLResponse:
    return HTMLResponse(render_guide())
