"""Accepting HAN requests: authorization per premise, validation, arbitration between providers,
and the commit of request + delivery rows before the API answers 202. Fan-out requests are expanded
later by the dispatcher, one keyset page at a time (`expand_fanout_page`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.authz import authorize
from gateway.domain.limits import over_device_limit
from gateway.domain.model import AgreementKind, Scope
from gateway.domain.records import Principal
from gateway.errors import Conflict, FieldError, Forbidden, GatewayError, InvalidRequest, NotFound
from gateway.pipeline import delivery_queue
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
    RequestKind,
    TextRequest,
    build_block_period,
    build_load_control,
    build_price,
    build_text,
    cancel_lce_command,
    cancel_text_command,
    encoding_errors,
    lacks_capability,
    with_se_id,
)
from gateway.pipeline.text_limits import Routes, text_limits
from gateway.store import fanout as fanout_sql
from gateway.store.schema import audit_log, han_deliveries, han_requests, lce_events, premises
from gateway.store.store import Store
from zigbee_se import utc_from_datetime

DEFAULT_SE_VERSION = "1.1"
ALL_SE_VERSIONS = {"1.0", "1.1", "1.2"}
EXCLUSION_REASONS = {
    "no_agreement": "no_consent", "unknown_premise": "no_consent", "premise_not_active": "no_consent",
    "wrong_agreement_kind": "scope_missing", "scope_not_granted": "scope_missing",
}
CANCEL_WINDOW = timedelta(hours=1)
MAX_LISTED_EXCLUSIONS = 1000  # how long a cancel may wait for an unreachable meter


@dataclass
class Accepted:
    request_id: int
    kind: str
    se_id: int | None
    targeted: int
    excluded: list[dict[str, str]] = field(default_factory=list)
    fanout: bool = False
    starts_at: datetime | None = None
    block_period_request_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.request_id, "kind": self.kind, "se_id": self.se_id,
               "targeted": self.targeted, "excluded": self.excluded,
               "fanout": "expanding" if self.fanout else None,
               "starts_at": self.starts_at.isoformat() if self.starts_at else None}
        if self.block_period_request_id is not None:
            out["block_period_request_id"] = self.block_period_request_id
        return out


@dataclass(frozen=True)
class Screened:
    """A request's named premises after authorization and capability checks."""

    targets: list[delivery_queue.DeliveryTarget]
    excluded: list[dict[str, str]]  # {"esi_id", "reason"}
    audit: list[dict[str, Any]]  # audit_log rows of the authorization decisions


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
            return await self.cancel(principal, body, now)
        if isinstance(body, CancelAllLoadControlRequest):
            return await self.cancel_all(principal, body, now)
        kind = RequestKind(body.kind)
        assert principal.party_id is not None
        if bool(body.esi_ids) == body.all_premises:
            raise InvalidRequest("give esi_ids or all_premises: true", errors=[FieldError(
                "esi_ids", "targets", "exactly one of esi_ids (non-empty) or all_premises", body.esi_ids)])
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
        async with self.store.engine.connect() as conn:
            looked = await authorize_targets(conn, principal, action, list(dict.fromkeys(body.esi_ids)), now)
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
        async with self.store.engine.begin() as conn:
            se_id = await delivery_queue.allocate_se_id(conn)
            command = with_se_id(command, se_id)
            if kind is RequestKind.LOAD_CONTROL and targets:
                command = await self._arbitrate_or_refuse(conn, party_id, body, command,
                                                          [t.esi_id for t in targets], now)
            request_id = await self._insert_request(conn, party_id, kind, body, se_id,
                                                    command, len(targets), excluded, now)
            await delivery_queue.insert_deliveries(conn, request_id=request_id, party_id=party_id,
                                                   se_id=se_id, command=command, targets=targets, now=now)
            if kind is RequestKind.LOAD_CONTROL:
                await self._record_events(conn, request_id, party_id, se_id, body,
                                          command, [t.esi_id for t in targets])
            if block is not None:
                block_request_id = await self._insert_block_period(conn, party_id, kind, body, block, request_id,
                                                                   screened, now)
            await delivery_queue.insert_many(conn, audit_log, screened.audit)
        return Accepted(request_id, kind.value, se_id, len(targets), excluded, body.all_premises,
                        command.starts_at, block_request_id)

    async def _arbitrate_or_refuse(self, conn: AsyncConnection, party_id: int, body: Any,  # noqa: PLR0917
                                   command: Command, esi_ids: list[str], now: datetime) -> Command:
        """The load-control event after arbitration; Conflict when another provider's overlaps."""
        command, conflicts = await self._arbitrate(conn, party_id, body, command, esi_ids, now)
        if conflicts:
            raise Conflict("overlapping load-control event(s) of another provider: " + "; ".join(
                f"{c['esi_id']}: event {c['issuer_event_id']} ({c['starts_at']}..{c['ends_at']})"
                for c in conflicts), code="event_conflict",
                errors=[FieldError(f"esi_ids[{c['esi_id']}]", "event_conflict",
                                   f"overlaps issuer event {c['issuer_event_id']}",
                                   c["issuer_event_id"]) for c in conflicts])
        return command

    async def _insert_block_period(self, conn: AsyncConnection, party_id: int, kind: RequestKind,  # noqa: PLR0917
                                   body: Any, block: Command, price_request_id: int, screened: Screened,
                                   now: datetime) -> int:
        """The block period is its own SE event (own issuer event id), delivered to the same
        premises as a companion request of the price; returns its request id."""
        block_se_id = await delivery_queue.allocate_se_id(conn)
        block = with_se_id(block, block_se_id)
        block_request_id = await self._insert_request(
            conn, party_id, kind, body, block_se_id, block, len(screened.targets), screened.excluded, now,
            part_of=price_request_id)
        await delivery_queue.insert_deliveries(conn, request_id=block_request_id, party_id=party_id,
                                               se_id=block_se_id, command=block, targets=screened.targets, now=now)
        return block_request_id

    async def _audit_refusal(self, audit: list[dict[str, Any]]) -> None:
        """Refused: the authorization decisions are still recorded (the audit log keeps every one)."""
        if audit:
            async with self.store.engine.begin() as conn:
                await delivery_queue.insert_many(conn, audit_log, audit)

    def _build(self, body: Any, targets: list[delivery_queue.DeliveryTarget], versions: set[str],
               now: datetime, errors: list[FieldError]) -> Command:
        if isinstance(body, TextRequest):
            limits = text_limits(self.routes, targets, versions, fanout=body.all_premises)
            return build_text(body, limits, now, self.config, errors)
        if isinstance(body, PriceRequest):
            return build_price(body, now, self.config, errors)
        assert isinstance(body, LoadControlRequest)
        return build_load_control(body, now, self.config, errors)

    async def _insert_request(self, conn: AsyncConnection, party_id: int, kind: RequestKind, body: Any,  # noqa: PLR0917
                              se_id: int | None, command: Command | None, targeted: int,
                              excluded: list[dict[str, str]], now: datetime,
                              cancels: int | None = None, part_of: int | None = None) -> int:
        fanout = bool(getattr(body, "all_premises", False))
        result = await conn.execute(han_requests.insert().values(
            party_id=party_id, kind=kind.value, body=body.model_dump_json(), se_id=se_id,
            command=delivery_queue.shared_command(command) if command is not None else None,
            target_all=fanout, fanout_after="" if fanout else None, targeted=targeted,
            excluded=json.dumps(excluded), state="expanding" if fanout else "accepted",
            cancels_request_id=cancels, part_of_request_id=part_of, starts_at=command.starts_at if command else None,
            ends_at=command.ends_at if command else None, created_at=now))
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    # ------------------------------------------------------------------ arbitration
    async def _arbitrate(self, conn: AsyncConnection, party_id: int, body: LoadControlRequest,  # noqa: PLR0917
                         command: Command, esi_ids: list[str], now: datetime,
                         policy: OverlapPolicy | None = None) -> tuple[Command, list[dict[str, Any]]]:
        """Overlapping events of *other* providers for the same device classes on the same premise,
        handled by the configured policy. Returns the (possibly moved) command and the conflicts
        that refuse it."""
        rows = (await conn.execute(sa.select(lce_events).where(
            lce_events.c.esi_id.in_(esi_ids), lce_events.c.state == "active",
            lce_events.c.party_id != party_id, lce_events.c.ends_at > command.starts_at,
            lce_events.c.starts_at < command.ends_at,
            lce_events.c.device_class.op("&")(body.device_classes) != 0))).all()
        if not rows:
            return command, []
        policy = policy or self.config.overlap_policy
        if policy is OverlapPolicy.QUEUE_AFTER:
            # Move the event past every conflicting one (SE events never overlap on a device).
            start = max(r.ends_at for r in rows)
            moved = Command(command.cluster_id, command.command,
                            {**command.fields, "start_time": _utc(start)}, start,
                            start + (command.ends_at - command.starts_at))
            return await self._arbitrate(conn, party_id, body, moved, esi_ids, now)
        if policy is OverlapPolicy.SUPERSEDE_IF_HIGHER_CRITICALITY:
            lower = [r for r in rows if r.criticality < body.criticality]
            if len(lower) == len(rows):
                await conn.execute(lce_events.update().where(
                    lce_events.c.id.in_([r.id for r in lower])).values(state="superseded"))
                return command, []
            rows = [r for r in rows if r.criticality >= body.criticality]
        return command, [{"esi_id": r.esi_id, "issuer_event_id": r.issuer_event_id,
                          "starts_at": r.starts_at.isoformat(), "ends_at": r.ends_at.isoformat()}
                         for r in rows]

    async def _record_events(self, conn: AsyncConnection, request_id: int, party_id: int, se_id: int,  # noqa: PLR0917
                             body: LoadControlRequest, command: Command, esi_ids: list[str]) -> None:
        if esi_ids:
            await conn.execute(lce_events.insert(), [{
                "esi_id": e, "issuer_event_id": se_id, "party_id": party_id, "request_id": request_id,
                "device_class": body.device_classes, "criticality": body.criticality,
                "starts_at": command.starts_at, "ends_at": command.ends_at, "state": "active"}
                for e in esi_ids])

    # ------------------------------------------------------------------ cancellation
    async def _own_request(self, conn: AsyncConnection, principal: Principal, request_id: int,
                           kind: RequestKind) -> Any:
        row = (await conn.execute(han_requests.select().where(han_requests.c.id == request_id))).first()
        if row is None or row.party_id != principal.party_id:
            # Another party's request is not even visible: a party never cancels another's event.
            raise NotFound(f"no han request {request_id}", code="unknown_han_request")
        if row.kind != kind.value:
            raise InvalidRequest(f"request {request_id} is a {row.kind} request, not {kind.value}",
                                 errors=[FieldError("request_id", "wrong_kind", f"a {kind.value} request",
                                                    request_id)])
        return row

    async def cancel(self, principal: Principal, body: CancelTextRequest | CancelLoadControlRequest,
                     now: datetime) -> Accepted:
        is_text = isinstance(body, CancelTextRequest)
        original_kind = RequestKind.TEXT if is_text else RequestKind.LOAD_CONTROL
        kind = RequestKind.CANCEL_TEXT if is_text else RequestKind.CANCEL_LOAD_CONTROL
        assert principal.party_id is not None
        async with self.store.engine.begin() as conn:
            original = await self._own_request(conn, principal, body.request_id, original_kind)
            effective = _effective_time(body, original, now) if isinstance(body, CancelLoadControlRequest) else None
            esi_ids = await self._cancel_pending(conn, original, now)
            if not is_text:
                await _end_events(conn, lce_events.c.request_id == original.id, effective)
            request_id = await self._insert_request(conn, principal.party_id, kind, body, original.se_id,
                                                    None, len(esi_ids), [], now, cancels=original.id)
            await self._insert_cancels(conn, principal.party_id, request_id, original, esi_ids, body, now)
        return Accepted(request_id, kind.value, original.se_id, len(esi_ids))

    async def _cancel_pending(self, conn: AsyncConnection, original: Any, now: datetime) -> list[tuple[str, str]]:
        """Pending work of `original` is removed; returns (ESI ID, SE version) of premises the
        request already reached (or may have: submitted), which need the SE cancel."""
        if original.fanout_after is not None:
            await conn.execute(han_requests.update().where(han_requests.c.id == original.id).values(
                fanout_after=None, state="cancelled"))
        rows = (await conn.execute(sa.select(
            han_deliveries.c.id, han_deliveries.c.request_id, han_deliveries.c.party_id,
            han_deliveries.c.esi_id, han_deliveries.c.state, han_deliveries.c.se_version).where(
            han_deliveries.c.request_id == original.id))).all()
        pending = [r for r in rows if r.state == delivery_queue.QUEUED]
        await delivery_queue.set_delivery_state(conn, pending, delivery_queue.CANCELLED, now,
                                                reason="cancelled by request", only_from=[delivery_queue.QUEUED])
        sent = (delivery_queue.SUBMITTED, delivery_queue.DELIVERED)
        return [(r.esi_id, r.se_version) for r in rows if r.state in sent]

    async def _insert_cancels(self, conn: AsyncConnection, party_id: int, request_id: int, original: Any,  # noqa: PLR0917
                              esi_ids: list[tuple[str, str]], body: Any, now: datetime) -> None:
        expires = now + CANCEL_WINDOW
        if original.kind == RequestKind.TEXT.value:
            command = cancel_text_command(original.se_id, now, expires)
        else:
            orig = json.loads(original.body)
            effective = getattr(body, "effective_time", None)
            command = cancel_lce_command(original.se_id, orig["device_classes"],
                                         orig.get("utility_enrollment_group", 0), effective,
                                         getattr(body, "randomize_end", False), now, expires)
        shared = body.kind != RequestKind.CANCEL_ALL_LOAD_CONTROL.value
        if shared:
            await conn.execute(han_requests.update().where(han_requests.c.id == request_id).values(
                command=delivery_queue.shared_command(command)))
        await delivery_queue.insert_deliveries(
            conn, request_id=request_id, party_id=party_id, se_id=original.se_id, command=command,
            targets=[delivery_queue.DeliveryTarget(e, v, None) for e, v in esi_ids], now=now, expires_at=expires,
            shared=shared, cancels_request_id=original.id)

    async def withdraw(self, request_id: int, deliveries: list[Any], now: datetime) -> int:
        """The agreement behind these deliveries ended: send the SE cancel to each premise (as a
        cancel request of the same party, so its status is visible) and mark them cancelled."""
        async with self.store.engine.begin() as conn:
            changed = await delivery_queue.set_delivery_state(
                conn, deliveries, delivery_queue.CANCELLED, now, reason="agreement ended: SE cancel sent",
                only_from=[delivery_queue.SUBMITTED, delivery_queue.DELIVERED])
            if not changed:
                return 0
            original = (await conn.execute(han_requests.select().where(han_requests.c.id == request_id))).one()
            is_text = original.kind == RequestKind.TEXT.value
            kind = RequestKind.CANCEL_TEXT if is_text else RequestKind.CANCEL_LOAD_CONTROL
            body: CancelTextRequest | CancelLoadControlRequest = (
                CancelTextRequest(kind="cancel_text", request_id=request_id) if is_text
                else CancelLoadControlRequest(kind="cancel_load_control", request_id=request_id))
            esi_ids = {t.esi_id for t in changed}
            versions = dict((await conn.execute(sa.select(han_deliveries.c.esi_id, han_deliveries.c.se_version).where(
                han_deliveries.c.request_id == request_id, han_deliveries.c.esi_id.in_(esi_ids)))).all())
            cancel_id = await self._insert_request(conn, original.party_id, kind, body, original.se_id, None,
                                                   len(esi_ids), [], now, cancels=request_id)
            await self._insert_cancels(conn, original.party_id, cancel_id, original,
                                       [(e, versions[e]) for e in sorted(esi_ids)], body, now)
            if kind is RequestKind.CANCEL_LOAD_CONTROL:
                await conn.execute(lce_events.update().where(
                    lce_events.c.request_id == request_id, lce_events.c.esi_id.in_(esi_ids)).values(state="cancelled"))
        return len(changed)

    async def cancel_all(self, principal: Principal, body: CancelAllLoadControlRequest,
                         now: datetime) -> Accepted:
        """Cancel every load-control event of *this* party on a premise. The SE
        CancelAllLoadControlEvents command would cancel other providers' events too, so the
        gateway sends one CancelLoadControlEvent per event of the caller instead: one delivery
        per (premise, event), each carrying the event's issuer id and naming its request, so the
        dispatcher sends each like any other item and its status is visible per event."""
        assert principal.party_id is not None
        decision = await authorize(self.store, principal, ACTION_FOR_KIND[RequestKind.CANCEL_ALL_LOAD_CONTROL],
                                   body.esi_id, now=now)
        if not decision.visible:  # the same answer as the policy's for a premise the party may not see
            raise NotFound(f"no premise {body.esi_id} visible to you", code="unknown_premise")
        if not decision.allowed:
            raise Forbidden(f"cancel_all_load_control on {body.esi_id} refused: {decision.reason}",
                            code=decision.reason)
        mine = sa.and_(lce_events.c.esi_id == body.esi_id, lce_events.c.party_id == principal.party_id)
        async with self.store.engine.begin() as conn:
            event_requests = (await conn.execute(sa.select(lce_events.c.request_id).where(
                mine, lce_events.c.state == "active", lce_events.c.ends_at > now).distinct().order_by(
                lce_events.c.request_id))).scalars().all()
            request_id = await self._insert_request(conn, principal.party_id, RequestKind.CANCEL_ALL_LOAD_CONTROL,
                                                    body, None, None, 0, [], now)
            sent = 0
            for orig_id in event_requests:
                original = (await conn.execute(han_requests.select().where(han_requests.c.id == orig_id))).one()
                rows = (await conn.execute(sa.select(
                    han_deliveries.c.id, han_deliveries.c.request_id, han_deliveries.c.party_id,
                    han_deliveries.c.esi_id, han_deliveries.c.state, han_deliveries.c.se_version).where(
                    han_deliveries.c.request_id == orig_id, han_deliveries.c.esi_id == body.esi_id))).all()
                await delivery_queue.set_delivery_state(conn, [r for r in rows if r.state == delivery_queue.QUEUED],
                                                delivery_queue.CANCELLED, now, reason="cancelled by request",
                                                only_from=[delivery_queue.QUEUED])
                reached = [(r.esi_id, r.se_version) for r in rows
                           if r.state in (delivery_queue.SUBMITTED, delivery_queue.DELIVERED)]
                await self._insert_cancels(conn, principal.party_id, request_id, original, reached, body, now)
                sent += len(reached)
            await _end_events(conn, mine, None)
            # `targeted` counts premises, as for every request: 1 if an SE cancel goes out.
            targeted = 1 if sent else 0
            await conn.execute(han_requests.update().where(han_requests.c.id == request_id).values(targeted=targeted))
        return Accepted(request_id, RequestKind.CANCEL_ALL_LOAD_CONTROL.value, None, targeted)

    # ------------------------------------------------------------------ fan-out
    async def expand_fanout_page(self, request_row: Any, now: datetime) -> int:
        """Expand one keyset page of a fan-out request into delivery rows; the cursor moves in the
        same transaction, so a crash repeats no page and skips none. Prices and texts go in one
        INSERT … SELECT (no Python object per premise); load-control events are arbitrated per
        premise first."""
        kind = RequestKind(request_row.kind)
        if kind is not RequestKind.LOAD_CONTROL:
            return await self._expand_page_in_sql(request_row, kind, now)
        page = await self.store.premises_in_scope(
            party_id=request_row.party_id, kind=AgreementKind.IN_HOME_DEVICE_SERVICES,
            scope=_scope_for(kind), now=now, after=request_row.fanout_after,
            limit=self.config.fanout_page)
        body = json.loads(request_row.body)
        done = len(page) < self.config.fanout_page
        async with self.store.engine.begin() as conn:
            if not await _claim_page(conn, request_row, now, fanout_after=None if done else page[-1][0],
                                     state="accepted" if done else "expanding"):
                return 0
            versions = dict((await conn.execute(sa.select(premises.c.esi_id, premises.c.se_version).where(
                premises.c.esi_id.in_([e for e, _ in page])))).all()) if page else {}
            stored = json.loads(request_row.command)
            command = Command(stored["cluster_id"], stored["command"], stored["fields"],
                              request_row.starts_at, request_row.ends_at)
            targets = [delivery_queue.DeliveryTarget(e, versions.get(e) or DEFAULT_SE_VERSION, a) for e, a in page]
            excluded: list[dict[str, str]] = []
            counts = await fanout_sql.device_counts(conn, [t.esi_id for t in targets]) if targets else {}
            kept = []
            for t in targets:
                enhanced, devices, controlled = counts.get(t.esi_id, (False, 0, 0))
                why = over_device_limit(enhanced, devices, controlled, load_control=True)
                if why is None:
                    kept.append(t)
                else:
                    excluded.append({"esi_id": t.esi_id, "reason": why})
            targets = kept
            if targets:
                lce = LoadControlRequest.model_validate(body)
                blocked = set()
                # One command is shared by every premise of a fan-out, so its start cannot move per
                # premise: under queue_after, a premise with an overlapping event is excluded.
                policy = self.config.overlap_policy
                if policy is OverlapPolicy.QUEUE_AFTER:
                    policy = OverlapPolicy.REFUSE
                _cmd, conflicts = await self._arbitrate(conn, request_row.party_id, lce, command,
                                                        [t.esi_id for t in targets], now, policy)
                for c in conflicts:
                    blocked.add(c["esi_id"])
                    excluded.append({"esi_id": c["esi_id"], "reason": f"conflict with event {c['issuer_event_id']}"})
                targets = [t for t in targets if t.esi_id not in blocked]
                await self._record_events(conn, request_row.id, request_row.party_id, request_row.se_id, lce,
                                          command, [t.esi_id for t in targets])
            await delivery_queue.insert_deliveries(conn, request_id=request_row.id, party_id=request_row.party_id,
                                           se_id=request_row.se_id, command=command, targets=targets, now=now)
            old_excluded = json.loads(request_row.excluded)
            await conn.execute(han_requests.update().where(han_requests.c.id == request_row.id).values(
                targeted=han_requests.c.targeted + len(targets),
                # The first MAX_LISTED_EXCLUSIONS are listed (a program of a million premises
                # must not grow one row without bound).
                excluded=json.dumps((old_excluded + excluded)[:MAX_LISTED_EXCLUSIONS])
                if excluded and len(old_excluded) < MAX_LISTED_EXCLUSIONS else request_row.excluded))
        return len(targets)


    async def _expand_page_in_sql(self, request_row: Any, kind: RequestKind, now: datetime) -> int:
        """A price or text page: its delivery rows are inserted by one INSERT … SELECT and the
        cursor moves to its last premise, in one transaction."""
        scope: dict[str, Any] = {"party_id": request_row.party_id, "kind": AgreementKind.IN_HOME_DEVICE_SERVICES,
                                 "scope": _scope_for(kind), "now": now, "after": request_row.fanout_after}
        # SE 1.0 meters carry no price acknowledgement and no block period: excluded (listed), not sent to.
        skip = frozenset({"1.0"}) if kind is RequestKind.PRICE and lacks_capability(
            PriceRequest.model_validate_json(request_row.body), "1.0") else frozenset()
        async with self.store.engine.begin() as conn:
            if not await _claim_page(conn, request_row, now, state="expanding"):
                return 0
            stored = json.loads(request_row.command)
            page = self.config.fanout_page
            insert = {"request_id": request_row.id, "se_id": request_row.se_id,
                      "default_version": DEFAULT_SE_VERSION, "cluster_id": int(stored["cluster_id"]),
                      "command": stored["command"],
                      "expires_at": request_row.ends_at, "skip_versions": skip}
            # The page's end is found first: some of its premises may be left out (SE 1.0 meters
            # for an acknowledged price; meters with more devices registered than they serve).
            last, count = await fanout_sql.page_end(conn, **scope, limit=page)
            done = count < page
            inserted = await fanout_sql.insert_page_deliveries(
                conn, **scope, **insert, last=last, limit=None) if last is not None else 0
            old_excluded = json.loads(request_row.excluded)
            excluded: list[dict[str, str]] = []
            if inserted < count and last is not None and len(old_excluded) < MAX_LISTED_EXCLUSIONS:
                room = MAX_LISTED_EXCLUSIONS - len(old_excluded)
                over = await fanout_sql.page_premises_over_device_limit(conn, **scope, last=last, limit=room)
                excluded = [{"esi_id": e, "reason": "device_limit: the meter has more devices registered than it "
                             "serves"} for e in over]
                if skip and len(excluded) < room:
                    reason = lacks_capability(PriceRequest.model_validate_json(request_row.body), "1.0")
                    assert reason is not None
                    excluded += [{"esi_id": e, "reason": reason} for e in await fanout_sql.page_premises_with_versions(
                        conn, **scope, last=last, default_version=DEFAULT_SE_VERSION, versions=skip,
                        limit=room - len(excluded))]
            await conn.execute(han_requests.update().where(han_requests.c.id == request_row.id).values(
                fanout_after=None if done else last, state="accepted" if done else "expanding",
                targeted=han_requests.c.targeted + inserted,
                # The first MAX_LISTED_EXCLUSIONS are listed (a program of a million premises
                # must not grow one row without bound).
                excluded=json.dumps(old_excluded + excluded) if excluded else request_row.excluded))
        return inserted


async def _claim_page(conn: AsyncConnection, request_row: Any, now: datetime, **values: Any) -> bool:
    """Start expanding a fan-out page: False if the request has ended (it is marked expired) or
    its cursor was moved meanwhile (a cancel, another pass). The request row is written first, on
    the condition that nobody moved the cursor, so the transaction holds the write lock for the
    reads and inserts that follow."""
    if now >= request_row.ends_at:
        await conn.execute(han_requests.update().where(han_requests.c.id == request_row.id).values(
            fanout_after=None, state="expired"))
        return False
    moved = await conn.execute(han_requests.update().where(
        han_requests.c.id == request_row.id,
        han_requests.c.fanout_after == request_row.fanout_after).values(**values))
    return bool(moved.rowcount)


def _effective_time(body: CancelLoadControlRequest, original: Any, now: datetime) -> datetime | None:
    """When the cancel takes effect: None for now (also for a time already past); refused when
    it has no time zone or falls after the event's end (the devices would refuse it)."""
    effective = body.effective_time
    if effective is None:
        return None
    if effective.tzinfo is None:
        raise InvalidRequest("effective_time needs a time zone", errors=[FieldError(
            "effective_time", "naive_time", "give a time zone (e.g. Z)", effective.isoformat())])
    if original.ends_at is not None and effective >= original.ends_at:
        raise InvalidRequest("effective_time is not before the event's end", errors=[FieldError(
            "effective_time", "effective_time_after_end",
            f"before the event's end {original.ends_at.isoformat()}", effective.isoformat())])
    return effective if effective > now else None


async def _end_events(conn: AsyncConnection, which: Any, effective: datetime | None) -> None:
    """The arbitration's view of cancelled load-control events (`which`: a condition on
    lce_events): cancelled now, or, with a future effective time, running until then (the
    devices keep the event until that time, so other providers may not overlap it before)."""
    active = sa.and_(which, lce_events.c.state == "active")
    if effective is None:
        await conn.execute(lce_events.update().where(active).values(state="cancelled"))
        return
    await conn.execute(lce_events.update().where(active, lce_events.c.starts_at >= effective).values(
        state="cancelled"))  # not started by then: it never runs
    await conn.execute(lce_events.update().where(active, lce_events.c.ends_at > effective).values(
        ends_at=effective))


def _utc(moment: datetime) -> int:
    return utc_from_datetime(moment)
