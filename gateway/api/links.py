"""OpenAPI links: which operation a response's ids lead to (a created party to its reads, a
request to its status...). Clients and schemathesis' stateful mode follow them.

Links name their target by `operationRef` (a JSON pointer into this document) rather than by
FastAPI's generated operationIds, which change with function names.
"""

from __future__ import annotations

from typing import Any


def to(path: str, method: str, **parameters: str) -> dict[str, Any]:
    """A link to `method path`, its parameters taken from the response (`$response.body#/id`)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


def links(*statuses: int, **named: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these links on each of `statuses`."""
    return {status: {"links": named} for status in statuses}
