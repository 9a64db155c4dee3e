"""Accepting HAN requests: authorization per premise, validation, arbitration between providers,
and the commit of request + delivery rows before the API answers 202. Fan-out requests are expanded
later by the dispatcher, one keyset page at a time (`expand_fanout_page`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ams_adapters.contract import OperationKind as RequestKind
from gateway.domain.limits import over_device_limit
from gateway.domain.model import AgreementKind, Scope
from gateway.domain.records import Principal
from gateway.errors import FieldError, Forbidden, GatewayError, InvalidRequest
from gateway.pipeline import cancellation, delivery_queue
from gateway.pipeline.accepted import Accepted
from gateway.pipeline.arbitration import arbitrate, arbitrate_or_refuse, lock_premises, record_events
from gateway.pipeline.config import OverlapPolicy, PipelineConfig
from gateway.pipeline.consent import audit_rows, authorize_targets
from gateway.pipeline.group_commit import NewRequest, committer_for
from gateway.pipeline.requests import (
    ACTION_FOR_KIND,
    CancelAllLoadControlRequest,
    CancelLoadControlRequest,
    CancelTextRequest,
    Command,
    LoadControlRequest,
    PriceRequest,
    TextRequest,
    build_block_period,
    build_load_control,
    build_price,
    build_text,
    encoding_errors,
    lacks_capability,
    with_se_id,
)
from gateway.pipeline.text_limits import Routes, text_limits
from gateway.store import fanout as fanout_sql
from gateway.store import han_requests as requests_sql
from gateway.store.audit import write_decisions
from gateway.store.deliveries import DueDelivery
from gateway.store.store import Store
from gateway.store.unit_of_work import Connection

DEFAULT_SE_VERSION = "1.1"
ALL_SE_VERSIONS = {"1.0", "1.1", "1.2"}
EXCLUSION_REASONS = {
    "no_agreement": "no_consent", "unknown_premise": "no_consent", "premise_not_active": "no_consent",
    "wrong_agreement_kind": "scope_missing", "scope_not_granted": "scope_missing",
}
# A fan-out lists its first exclusions only (a program of a million premises must not grow one
# row without bound).
MAX_LISTED_EXCLUSIONS = 1000


@dataclass(frozen=True)
class Screened:
    """A request's named premises after authorization and capability checks."""

    targets: list[delivery_queue.DeliveryTarget]
    excluded: list[dict[str, str]]  # {"esi_id", "reason"}
    audit: list[dict[str, Any]]  # audit_log rows of the authorization decisions


def _require_one_target_form(body: Any) -> None:
    """Named premises or every premise in scope (a fan-out), never both nor neither."""
    if bool(body.esi_ids) == body.all_premises:
        raise InvalidRequest("give esi_ids or all_premises: true", errors=[FieldError(
            "esi_ids", "targets", "exactly one of esi_ids (non-empty) or all_premises", body.esi_ids)])


def _refuse_unsendable(body: Any, screened: Screened, errors: list[FieldError]) -> None:
    """InvalidRequest for invalid fields; Forbidden when no named premise may receive the request."""
    if errors:
        raise InvalidRequest(f"{len(errors)} invalid field(s)", errors=errors)
    if body.esi_ids and not screened.targets:
        excluded = screened.excluded
        raise Forbidden("no target premise may receive this request: " + ", ".join(
            f"{e['esi_id']} ({e['reason']})" for e in excluded), code="no_authorized_target",
            errors=[FieldError(f"esi_ids[{e['esi_id']}]", e["reason"], "not authorized",
                               e["esi_id"]) for e in excluded])


def _scope_for(kind: RequestKind) -> Scope:
    return {RequestKind.TEXT: Scope.TEXT, RequestKind.PRICE: Scope.PRICE}.get(kind, Scope.LOAD_CONTROL)


class RequestService:
    """HAN requests from their acceptance to their delivery rows: `submit` (a cancel goes to
    cancellation.py), the fan-out's pages (`expand_fanout_page`), and the withdrawal of work whose
    agreement ended (`withdraw`), both called by the dispatcher."""

    def __init__(self, store: Store, config: PipelineConfig, routes: Routes | None = None) -> None:
        """`routes`: the premises' routes, whose text limits a text must fit (without them, as
        for premises no route reaches yet, the SE single-frame budget applies)."""
        self.store = store
        self.config = config
        self.routes = routes

    # ------------------------------------------------------------------ new requests
    async def submit(self, principal: Principal, body: Any, now: datetime) -> Accepted:
        """Accept a request: screen its targets, build its SE command, commit it (in a group, or
        with arbitration), all before the API answers 202; a refusal still leaves its audit rows."""
        if isinstance(body, CancelTextRequest | CancelLoadControlRequest):
            return await cancellation.cancel(self.store, principal, body, now)
        if isinstance(body, CancelAllLoadControlRequest):
            return await cancellation.cancel_all(self.store, principal, body, now)
        kind = RequestKind(body.kind)
        assert principal.party_id is not None
        _require_one_target_form(body)
        screened = await self._screen_targets(principal, body, kind, now)
        errors: list[FieldError] = []
        # The SE versions among the targets (a fan-out: every version it may reach).
        versions = {t.se_version for t in screened.targets} if body.esi_ids else {
            v for v in ALL_SE_VERSIONS if lacks_capability(body, v) is None}
        versions = versions or {DEFAULT_SE_VERSION}
        command = self._build(body, screened.targets, versions, now, errors)
        block = build_block_period(body, command.starts_at, now, errors) if isinstance(body, PriceRequest) else None
        errors = errors or encoding_errors([command, block], versions)
        try:
            _refuse_unsendable(body, screened, errors)
            if kind is not RequestKind.LOAD_CONTROL and block is None:
                return await self._commit_in_group(principal.party_id, kind, body, command, screened, now)
            return await self._commit_arbitrated(principal.party_id, kind, body, command, block, screened, now)
        except GatewayError:
            await self._audit_refusal(screened.audit)
            raise

    async def _screen_targets(self, principal: Principal, body: Any, kind: RequestKind, now: datetime) -> Screened:
        """Authorization per named premise, then what each premise can take (SE version, device
        limits): the targets, the exclusions with their reasons, and the audit rows of the decisions.
        A fan-out (all_premises) is screened page by page later, by `expand`."""
        screened = Screened([], [], [])
        if not body.esi_ids:
            return screened
        action = ACTION_FOR_KIND[kind]
        looked = await authorize_targets(self.store, principal, action, list(dict.fromkeys(body.esi_ids)), now)
        screened.audit.extend(audit_rows(principal, action, list(looked.values()), now))
        for esi, target in looked.items():
            decision = target.decision
            if not decision.allowed:
                screened.excluded.append({"esi_id": esi, "reason": EXCLUSION_REASONS.get(
                    decision.reason, decision.reason)})
                continue
            version = target.se_version or DEFAULT_SE_VERSION
            lacking = lacks_capability(body, version) or over_device_limit(
                target.enhanced_meter, target.devices, target.load_control_devices,
                kind is RequestKind.LOAD_CONTROL)
            if lacking:
                screened.excluded.append({"esi_id": esi, "reason": lacking})
                continue
            screened.targets.append(delivery_queue.DeliveryTarget(esi, version, decision.agreement_id))
        return screened

    async def _commit_in_group(self, party_id: int, kind: RequestKind, body: Any,  # noqa: PLR0917
                               command: Command, screened: Screened, now: datetime) -> Accepted:
        """Texts and prices need no arbitration: pure inserts, committed in a group with the
        requests arriving meanwhile (group_commit.py), before the API answers 202."""
        request_id, se_id = await committer_for(self.store).submit(NewRequest(
            party_id, kind.value, body.model_dump_json(), command, screened.targets,
            json.dumps(screened.excluded), screened.audit, now, fanout=body.all_premises))
        return Accepted(request_id, kind.value, se_id, len(screened.targets), screened.excluded, body.all_premises,
                        command.starts_at)

    async def _commit_arbitrated(self, party_id: int, kind: RequestKind, body: Any,  # noqa: PLR0917
                                 command: Command, block: Command | None, screened: Screened,
                                 now: datetime) -> Accepted:
        """One transaction: the request, its delivery rows, a load-control event's arbitration
        and records, a price's block period, and the authorization decisions, committed together
        before the API answers 202."""
        targets, excluded = screened.targets, screened.excluded
        block_request_id: int | None = None
        async with self.store.transaction() as tx:
            if targets:
                # The premises' locks before the SE id: arbitration's (load control), and a meter's
                # ids increase in the order its deliveries are queued (gateway/store/se_ids.py).
                await lock_premises(tx, [t.esi_id for t in targets])
            se_id = await delivery_queue.allocate_se_id(tx)
            command = with_se_id(command, se_id)
            if kind is RequestKind.LOAD_CONTROL and targets:
                command = await arbitrate_or_refuse(tx, party_id, body, command, [t.esi_id for t in targets],
                                                    self.config.overlap_policy)
            request_id = await _insert_request(tx, party_id, kind, body, se_id, command, screened, now)
            await delivery_queue.insert_deliveries(tx, request_id=request_id, party_id=party_id,
                                                   se_id=se_id, command=command, targets=targets, now=now)
            if kind is RequestKind.LOAD_CONTROL:
                await record_events(tx, request_id, party_id, se_id, body, command, [t.esi_id for t in targets])
            if block is not None:
                block_request_id = await _insert_block_period(tx, party_id, kind, body, block, request_id,
                                                              screened, now)
            await write_decisions(tx, screened.audit)
        return Accepted(request_id, kind.value, se_id, len(targets), excluded, body.all_premises,
                        command.starts_at, block_request_id)

    async def _audit_refusal(self, audit: list[dict[str, Any]]) -> None:
        """Refused: the authorization decisions are still recorded (the audit log keeps every one)."""
        await self.store.append_audit_rows(audit)

    def _build(self, body: Any, targets: list[delivery_queue.DeliveryTarget], versions: set[str],
               now: datetime, errors: list[FieldError]) -> Command:
        if isinstance(body, TextRequest):
            limits = text_limits(self.routes, targets, versions, fanout=body.all_premises)
            return build_text(body, limits, now, self.config, errors)
        if isinstance(body, PriceRequest):
            return build_price(body, now, self.config, errors)
        assert isinstance(body, LoadControlRequest)
        return build_load_control(body, now, self.config, errors)

    # ------------------------------------------------------------------ cancellation (cancellation.py)
    async def withdraw(self, request_id: int, deliveries: list[Any], now: datetime) -> int:
        """The agreement behind these deliveries ended: the SE cancel goes to each premise."""
        return await cancellation.withdraw(self.store, request_id, deliveries, now)

    # ------------------------------------------------------------------ fan-out
    async def expand_fanout_page(self, request_row: Any, now: datetime, *, claim_for: timedelta | None = None,
                                 ) -> tuple[int, list[DueDelivery]] | None:
        """Expand one keyset page of a fan-out request into delivery rows; the cursor moves in the
        same transaction, so a crash repeats no page and skips none. Prices and texts go in one
        INSERT … SELECT (no Python object per premise); load-control events are arbitrated per
        premise first. Returns the rows added, and the rows claimed for the caller to send: with
        `claim_for` (PostgreSQL) a price or text page's rows are inserted claimed for that lease
        (`fanout.insert_claimed_page`), else none are. None when this page was not this
        caller's to expand (another instance has it or moved the cursor, a cancel stopped the
        fan-out, or its end time passed)."""
        kind = RequestKind(request_row.kind)
        if kind is not RequestKind.LOAD_CONTROL:
            return await self._expand_page_in_sql(request_row, kind, now, claim_for)
        page = await self.store.premises_in_scope(
            party_id=request_row.party_id, kind=AgreementKind.IN_HOME_DEVICE_SERVICES,
            scope=_scope_for(kind), now=now, after=request_row.fanout_after,
            limit=self.config.fanout_page)
        done = len(page) < self.config.fanout_page
        async with self.store.transaction() as tx:
            if not await _claim_page(tx, request_row, now, fanout_after=None if done else page[-1][0],
                                     state="accepted" if done else "expanding"):
                return None
            stored = json.loads(request_row.command)
            command = Command(stored["cluster_id"], stored["command"], stored["fields"],
                              request_row.starts_at, request_row.ends_at)
            targets, excluded = await _within_device_limits(tx, page)
            if targets:
                lce = LoadControlRequest.model_validate(json.loads(request_row.body))
                targets, conflicts = await self._arbitrate_page(tx, request_row, lce, command, targets, now)
                excluded += conflicts
                await record_events(tx, request_row.id, request_row.party_id, request_row.se_id, lce,
                                    command, [t.esi_id for t in targets])
            await delivery_queue.insert_deliveries(tx, request_id=request_row.id, party_id=request_row.party_id,
                                                   se_id=request_row.se_id, command=command, targets=targets,
                                                   now=now)
            old_excluded = json.loads(request_row.excluded)
            await requests_sql.add_fanout_page(
                tx, request_row.id, added=len(targets),
                excluded_json=json.dumps((old_excluded + excluded)[:MAX_LISTED_EXCLUSIONS])
                if excluded and len(old_excluded) < MAX_LISTED_EXCLUSIONS else request_row.excluded)
        return len(targets), []

    async def _arbitrate_page(self, tx: Connection, request_row: Any,  # noqa: PLR0917
                              lce: LoadControlRequest, command: Command,
                              targets: list[delivery_queue.DeliveryTarget],
                              now: datetime) -> tuple[list[delivery_queue.DeliveryTarget], list[dict[str, str]]]:
        """The page's premises without another provider's overlapping event, and the others as
        exclusions. One command is shared by every premise of a fan-out, so its start cannot move
        per premise: under queue_after, a premise with an overlapping event is excluded."""
        policy = self.config.overlap_policy
        if policy is OverlapPolicy.QUEUE_AFTER:
            policy = OverlapPolicy.REFUSE
        _cmd, conflicts = await arbitrate(tx, request_row.party_id, lce, command, [t.esi_id for t in targets],
                                          policy)
        blocked = {c["esi_id"] for c in conflicts}
        excluded = [{"esi_id": c["esi_id"], "reason": f"conflict with event {c['issuer_event_id']}"}
                    for c in conflicts]
        return [t for t in targets if t.esi_id not in blocked], excluded

    async def _expand_page_in_sql(self, request_row: Any, kind: RequestKind, now: datetime,
                                  claim_for: timedelta | None) -> tuple[int, list[DueDelivery]] | None:
        """A price or text page: its delivery rows are inserted by one INSERT … SELECT (claimed
        for `claim_for` and returned, when given) and the cursor moves to its last premise, in
        one transaction."""
        scope: dict[str, Any] = {"party_id": request_row.party_id, "kind": AgreementKind.IN_HOME_DEVICE_SERVICES,
                                 "scope": _scope_for(kind), "now": now, "after": request_row.fanout_after}
        # SE 1.0 meters carry no price acknowledgement and no block period: excluded (listed), not sent to.
        skip = frozenset({"1.0"}) if kind is RequestKind.PRICE and lacks_capability(
            PriceRequest.model_validate_json(request_row.body), "1.0") else frozenset()
        async with self.store.transaction() as tx:
            if not await _claim_page(tx, request_row, now, state="expanding"):
                return None
            stored = json.loads(request_row.command)
            page = self.config.fanout_page
            insert = {"request_id": request_row.id, "se_id": request_row.se_id,
                      "default_version": DEFAULT_SE_VERSION, "cluster_id": int(stored["cluster_id"]),
                      "command": stored["command"],
                      "expires_at": request_row.ends_at, "skip_versions": skip}
            claimed: list[DueDelivery] = []
            if claim_for is not None:  # PostgreSQL: the page walked once, its rows claimed by this instance
                last, count, claimed, inserted = await fanout_sql.insert_claimed_page(
                    tx, **scope, **insert, limit=page, claimed_until=now + claim_for)
            else:
                # The page's end is found first: some of its premises may be left out (SE 1.0 meters
                # for an acknowledged price; meters with more devices registered than they serve).
                last, count = await fanout_sql.page_end(tx, **scope, limit=page)
                inserted = await fanout_sql.insert_page_deliveries(
                    tx, **scope, **insert, last=last, limit=None) if last is not None else 0
            done = count < page
            old_excluded = json.loads(request_row.excluded)
            excluded: list[dict[str, str]] = []
            if inserted < count and last is not None and len(old_excluded) < MAX_LISTED_EXCLUSIONS:
                room = MAX_LISTED_EXCLUSIONS - len(old_excluded)
                over = await fanout_sql.page_premises_over_device_limit(tx, **scope, last=last, limit=room)
                excluded = [{"esi_id": e, "reason": "device_limit: the meter has more devices registered than it "
                             "serves"} for e in over]
                if skip and len(excluded) < room:
                    reason = lacks_capability(PriceRequest.model_validate_json(request_row.body), "1.0")
                    assert reason is not None
                    excluded += [{"esi_id": e, "reason": reason} for e in await fanout_sql.page_premises_with_versions(
                        tx, **scope, last=last, default_version=DEFAULT_SE_VERSION, versions=skip,
                        limit=room - len(excluded))]
            await requests_sql.add_fanout_page(
                tx, request_row.id, added=inserted,
                excluded_json=json.dumps(old_excluded + excluded) if excluded else request_row.excluded,
                fanout_after=None if done else last, state="accepted" if done else "expanding")
        return inserted, claimed


async def _insert_request(tx: Connection, party_id: int, kind: RequestKind, body: Any,  # noqa: PLR0917
                          se_id: int, command: Command, screened: Screened, now: datetime,
                          part_of: int | None = None) -> int:
    """The request's row, with the command its deliveries share (`shared_command`)."""
    return await requests_sql.insert_request(
        tx, party_id=party_id, kind=kind.value, body_json=body.model_dump_json(), se_id=se_id, now=now,
        command_json=delivery_queue.shared_command(command), starts_at=command.starts_at,
        ends_at=command.ends_at, fanout=body.all_premises, targeted=len(screened.targets),
        excluded_json=json.dumps(screened.excluded), part_of=part_of)


async def _insert_block_period(tx: Connection, party_id: int, kind: RequestKind,  # noqa: PLR0917
                               body: Any, block: Command, price_request_id: int, screened: Screened,
                               now: datetime) -> int:
    """The block period is its own SE event (own issuer event id), delivered to the same
    premises as a companion request of the price; returns its request id."""
    block_se_id = await delivery_queue.allocate_se_id(tx)
    block = with_se_id(block, block_se_id)
    block_request_id = await _insert_request(tx, party_id, kind, body, block_se_id, block, screened, now,
                                             part_of=price_request_id)
    await delivery_queue.insert_deliveries(tx, request_id=block_request_id, party_id=party_id,
                                           se_id=block_se_id, command=block, targets=screened.targets, now=now)
    return block_request_id


async def _claim_page(tx: Connection, request_row: Any, now: datetime, **values: Any) -> bool:
    """Start expanding a fan-out page: False if the request has ended (it is marked expired) or
    its cursor was moved meanwhile (a cancel, another pass). The request row is written first, on
    the condition that nobody moved the cursor, so the transaction holds the write lock for the
    reads and inserts that follow."""
    if now >= request_row.ends_at:
        await requests_sql.stop_fanout(tx, request_row.id, "expired")
        return False
    return await requests_sql.claim_fanout_page(tx, request_row.id, request_row.fanout_after, **values)


async def _within_device_limits(tx: Connection, page: list[tuple[str, int]],
                                ) -> tuple[list[delivery_queue.DeliveryTarget], list[dict[str, str]]]:
    """A load-control page's premises (ESI ID, agreement id) as targets at their SE version, but
    those whose meter has more devices registered than it serves, which are excluded."""
    if not page:
        return [], []
    versions = await fanout_sql.se_versions(tx, [e for e, _ in page])
    counts = await fanout_sql.device_counts(tx, [e for e, _ in page])
    kept, excluded = [], []
    for esi_id, agreement_id in page:
        enhanced, devices, controlled = counts.get(esi_id, (False, 0, 0))
        why = over_device_limit(enhanced, devices, controlled, load_control=True)
        if why is None:
            kept.append(delivery_queue.DeliveryTarget(esi_id, versions.get(esi_id) or DEFAULT_SE_VERSION,
                                                      agreement_id))
        else:
            excluded.append({"esi_id": esi_id, "reason": why})
    return kept, excluded

