"""The cyclic garbage collector and the objects a process makes at start-up.

Everything imported and built before the gateway serves — modules, classes, functions, SQLAlchemy's
and pydantic's schemas, the routes — stays alive until the process ends, yet every full collection
walks all of it again. The delivery path keeps thousands of rows alive across awaits (a dispatcher
pass), which promotes them and brings full collections often: in the 100,000-premise fan-out
(`python -m benchmarks.pipeline --fanout-only`) half of the event loop thread's CPU went to the
collector. Frozen after start-up, those objects are left out of every collection (CPython's
`gc.freeze`, for this purpose); thawed at shutdown so a process that starts and stops several
gateways (the tests) does not keep their cyclic garbage.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Leave every object tracked now out of all later collections (no collection first: a
    gateway started in a test process would pay for the whole suite's heap; the little garbage
    frozen with the rest goes back at `thaw_startup_objects`)."""
    gc.freeze()


def thaw_startup_objects() -> None:
    """Give the frozen objects back to the collector (the gateway is stopping)."""
    gc.unfreeze()
