"""Authorization of a request's target premises in one read, and their audit rows.

`gateway.authz.authorize` answers for one premise with several queries (the premise, the party's
agreements, their premises) and writes its audit row in a transaction of its own: right for the
API's premise and device routes, but a HAN request paid it per target on its hot path. Here one
SELECT (`Store.consent_at_premises`, gateway/store/agreements.py) reads, for every target, the
premise (status, SE version, meter kind, how many devices are registered) and the caller's active
agreements covering it; the decision is the same pure function `authorize`
uses (`decide_for_agreements`); the audit rows are returned for the caller to write in the same
transaction as the request (or on their own when the request is refused).

Consent is read before the request's write transaction, so an agreement terminated in between is
not seen at acceptance: the dispatcher checks every delivery's agreement again at send time and
cancels work of agreements no longer in force (`Dispatcher._due`), and the withdrawal sweep sends
the SE cancel for work already delivered. Nothing is cached across requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.authz import Decision, decide_for_agreements
from gateway.domain.model import Action, AgreementKind, Role, Scope
from gateway.domain.records import Principal
from gateway.store.store import Store


@dataclass(frozen=True)
class _Terms:
    id: int
    kind: AgreementKind
    scopes: tuple[Scope, ...]


@dataclass
class TargetPremise:
    """What acceptance needs to know about one target premise."""

    esi_id: str
    decision: Decision
    se_version: str | None = None
    enhanced_meter: bool = False
    devices: int = 0  # HAN devices registered (not removed)
    load_control_devices: int = 0  # of which load-control device types


async def authorize_targets(store: Store, principal: Principal, action: Action,
                            esi_ids: Sequence[str], now: datetime) -> dict[str, TargetPremise]:
    """Decisions for a third party's `action` on each of `esi_ids` (distinct): one round trip for
    premises, their device counts and the party's agreements covering them
    (`Store.consent_at_premises`)."""
    if principal.role is not Role.THIRD_PARTY or principal.party_id is None:
        raise ValueError("HAN requests are sent by third parties")
    rows = await store.consent_at_premises(principal.party_id, esi_ids)
    found: dict[str, Any] = {}
    in_force: dict[str, list[_Terms]] = {}
    for r in rows:
        found.setdefault(r.esi_id, r)
        terms = in_force.setdefault(r.esi_id, [])
        # Ended or expired agreements stop access at once, even before the lifecycle timer has
        # updated their state (as in `authorize`).
        if r.id is not None and r.starts_at is not None and r.ends_at is not None \
                and r.starts_at <= now < r.ends_at:
            terms.append(_Terms(r.id, AgreementKind(r.kind), tuple(Scope(s) for s in r.scopes.split(",") if s)))
    out: dict[str, TargetPremise] = {}
    for esi in esi_ids:
        row = found.get(esi)
        if row is None:
            out[esi] = TargetPremise(esi, Decision(False, "unknown_premise", visible=False))
        elif row.status != "active":
            out[esi] = TargetPremise(esi, Decision(False, "premise_not_active", visible=False))
        else:
            out[esi] = TargetPremise(esi, decide_for_agreements(action, in_force[esi]), row.se_version,
                                     bool(row.enhanced_meter), row.devices, row.controlled)
    return out


def audit_rows(principal: Principal, action: Action, targets: Sequence[TargetPremise],
               now: datetime) -> list[dict[str, Any]]:
    """The audit log rows of these decisions (what `authorize` appends, one per premise)."""
    return [{"at": now, "principal_role": principal.role.value, "principal_id": principal.subject_id,
             "action": action.value, "esi_id": t.esi_id, "device_eui64": None,
             "agreement_id": t.decision.agreement_id, "allowed": t.decision.allowed,
             "reason": t.decision.reason} for t in targets]
