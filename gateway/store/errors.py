"""The store's errors, so that callers outside gateway/store catch them without the database
library (the API's routes and its idempotency guard)."""

from __future__ import annotations


class ConstraintViolation(Exception):
    """A write broke one of the database's constraints: a unique key is taken (perhaps by a row
    another request committed after this one looked), or a row it names is missing. Raised from
    the database's own error (`__cause__`)."""
