"""A free TCP port for a process the caller starts later (a `hangw serve`, an SMTP test server).

A port found with `bind(("127.0.0.1", 0))` lies in the kernel's ephemeral range: before the new process
binds it, any outgoing connection (to PostgreSQL, the broker, a head-end) or any other `bind(0)` may be
given the same port, and the process fails with "address already in use". CI saw exactly that. So the
port is drawn from below the ephemeral range, which the kernel never hands out on its own, and checked
bindable. Where the caller can keep the socket open and hand it over (uvicorn's `sockets=`), it should.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_FLOOR = 20000


def _ephemeral_low() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port below the ephemeral range that nothing listens on now (random, so parallel runs differ)."""
    low = _ephemeral_low()
    top = low - 1 if low - 1 > _FLOOR + 1000 else 65535  # an unusual range: fall back to the high ports
    base = _FLOOR if top != 65535 else 61000
    for _ in range(200):
        port = random.randint(base, top)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {base} and {top} on {host}")
