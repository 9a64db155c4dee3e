"""The delivery queue as the pipeline builds it: a request's delivery rows (one per premise and SE
event) and its shared command, and the outbound ids routes know deliveries by.

The queue's tables are written in gateway/store/deliveries.py (states, transitions, webhook events
in the same transaction) and the SE id counter in gateway/store/se_ids.py; the names the request
service uses are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.pipeline.requests import Command
from gateway.store import deliveries
from gateway.store.bulk import insert_many
from gateway.store.deliveries import (
    CANCELLED,
    DELIVERED,
    EXPIRED,
    FAILED,
    FINAL_STATES,
    PENDING_STATES,
    QUEUED,
    SENT_STATES,
    SUBMITTED,
    UNKNOWN,
)
from gateway.store.deliveries import set_state as set_delivery_state
from gateway.store.se_ids import allocate_se_id
from gateway.store.unit_of_work import Connection

__all__ = [  # the store's names the request service (service.py) calls through this module
    "CANCELLED", "DELIVERED", "EXPIRED", "FAILED", "FINAL_STATES", "PENDING_STATES", "QUEUED", "SENT_STATES",
    "SUBMITTED", "UNKNOWN",
    "DeliveryTarget", "allocate_se_id", "delivery_of", "delivery_rows", "insert_deliveries", "insert_many",
    "outbound_id", "set_delivery_state", "shared_command",
]


def outbound_id(delivery_id: int) -> str:
    return f"hgw-{delivery_id}"


def delivery_of(outbound: str) -> int | None:
    if outbound.startswith("hgw-") and outbound[4:].isdigit():
        return int(outbound[4:])
    return None


@dataclass(frozen=True)
class DeliveryTarget:
    esi_id: str
    se_version: str
    agreement_id: int | None


def shared_command(command: Command) -> str:
    """The request-level command (JSON): the SE command and its fields, stored once for all the
    request's premises (a fan-out to a million premises stores them once). No frame: the routes
    that send frames encode the fields for each meter's SE version (ams_adapters/se_frames.py)."""
    return json.dumps({"cluster_id": int(command.cluster_id), "command": command.command,
                       "fields": command.fields}, default=str)


async def insert_deliveries(conn: Connection, *, request_id: int, party_id: int,
                            se_id: int | None, command: Command, targets: Sequence[DeliveryTarget],
                            now: datetime, expires_at: datetime | None = None,
                            shared: bool = True, cancels_request_id: int | None = None) -> None:
    """One delivery row per premise, queued now. With `shared` the rows use the request's command
    (`shared_command`, stored on the request); otherwise each row carries its own fields (the
    `frame` column stays NULL; rows written by earlier versions may hold one, which only the deliveries API shows).
    A cancel's rows name the request they cancel (`cancels_request_id`)."""
    await deliveries.insert(conn, delivery_rows(
        request_id=request_id, party_id=party_id, se_id=se_id, command=command, targets=targets, now=now,
        expires_at=expires_at, shared=shared, cancels_request_id=cancels_request_id))


def delivery_rows(*, request_id: int, party_id: int | None, se_id: int | None, command: Command,
                  targets: Sequence[DeliveryTarget], now: datetime, expires_at: datetime | None = None,
                  shared: bool = True, cancels_request_id: int | None = None) -> list[dict[str, Any]]:
    """The delivery rows of `insert_deliveries` (several requests' rows go into one INSERT when
    acceptances are committed as a group)."""
    if not targets:
        return []
    fields_json = None if shared else json.dumps(command.fields, default=str)
    rows = []
    for t in targets:
        rows.append({
            "request_id": request_id, "party_id": party_id, "esi_id": t.esi_id,
            "agreement_id": t.agreement_id, "se_id": se_id, "se_version": t.se_version,
            "cluster_id": int(command.cluster_id), "command": command.command, "fields": fields_json,
            "frame": None, "state": QUEUED, "attempts": 0, "next_attempt_at": now,
            "expires_at": expires_at or command.ends_at, "created_at": now, "updated_at": now,
            "cancels_request_id": cancels_request_id,
        })
    return rows
