"""Structured logs: one JSON object per line on stderr (stdlib logging, no extra dependency)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else passed via `extra=` is emitted as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# Paths that carry a secret: the customer's single-use consent and termination links, their page's
# link, and a third party's one-time sign-in link.
_LINK_TOKEN = re.compile(r"(/consent/|/agreements/terminate/|/my/|/dashboard/sign-in/link/)[^\s/?\"]+")


class RedactLinkTokens(logging.Filter):
    """Replaces the token of a consent or termination link in a log line by `[redacted]` (the access
    log of the HTTP server prints request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_LINK_TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _LINK_TOKEN.sub(r"\1[redacted]", record.msg)
        return True


def redact_link_tokens() -> None:
    """Install the filter on the loggers that print request paths (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", "gateway.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactLinkTokens) for f in logger.filters):
            logger.addFilter(RedactLinkTokens())
