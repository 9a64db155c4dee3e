"""The radio route's state in the gateway's database (SQLite or PostgreSQL, the Store's engine).

Devices live in `han_devices` — the same rows the API's device endpoints list — with their
status from DeviceStatus and the reason of the last change in `last_reason` (as provisioning
through a head-end records it); the radio's own detail (the NWK address) in `radio_devices`;
outbound idempotency records in `radio_outbound` (migration 0008).
EUI-64s are stored as the API stores them (16 upper-case hex digits) and handed back to the route
as zigpy prints them (00:0d:6f:…).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ams_adapters.radio.state import DeviceRecord, DeviceState, OutboundRecord, OutboundState
from gateway.domain.model import DeviceStatus
from gateway.store.schema import han_devices, premises, radio_devices, radio_outbound
from gateway.store.store import Store

UNKNOWN_DEVICE_TYPE = "unknown"


class PremiseNotFound(LookupError):
    """The radio serves an ESI ID the gateway's store does not know."""

    def __init__(self, esi_id: str) -> None:
        super().__init__(
            f"esi_id={esi_id!r}: not a premise in the gateway's store "
            "(import it first: hangw admin premises import FILE)"
        )
        self.esi_id = esi_id


def store_eui64(eui64: str) -> str:
    """00:0d:6f:00:0a:90:69:e7 -> 000D6F000A9069E7 (how han_devices keeps EUI-64s)."""
    digits = eui64.replace(":", "").replace("-", "").upper()
    if len(digits) != 16 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ValueError(f"eui64={eui64!r}: 16 hex digits (aa:bb:cc:dd:ee:ff:00:11)")
    return digits


def zigpy_eui64(stored: str) -> str:
    low = stored.lower()
    return ":".join(low[i : i + 2] for i in range(0, 16, 2))


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


class GatewayRouteState:
    """RouteStateStore (ams_adapters/radio/state.py) for one premise, on the gateway's store."""

    def __init__(self, store: Store, esi_id: str) -> None:
        self.store = store
        self.esi_id = esi_id

    async def check_premise(self) -> None:
        """Raise PremiseNotFound unless the premise exists (devices reference it)."""
        async with self.store.engine.connect() as conn:
            found = (await conn.execute(sa.select(premises.c.esi_id).where(premises.c.esi_id == self.esi_id))).first()
        if found is None:
            raise PremiseNotFound(self.esi_id)

    # ------------------------------------------------------------------ outbound records
    async def outbound(self, outbound_id: str) -> OutboundRecord | None:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(radio_outbound.select().where(radio_outbound.c.outbound_id == outbound_id))
            ).first()
        return None if row is None else _outbound(row)

    async def record_outbound(
        self, outbound_id: str, eui64: str, state: OutboundState, reason: str | None = None
    ) -> None:
        now = datetime.now(UTC)
        async with self.store.engine.begin() as conn:
            old = (
                await conn.execute(
                    sa.select(radio_outbound.c.state).where(radio_outbound.c.outbound_id == outbound_id)
                )
            ).first()
            if old is None:
                await conn.execute(
                    radio_outbound.insert().values(
                        outbound_id=outbound_id,
                        esi_id=self.esi_id,
                        eui64=store_eui64(eui64),
                        state=state.value,
                        reason=reason[:300] if reason else None,
                        created_at=now,
                        updated_at=now,
                    )
                )
            elif not OutboundState(old.state).final:
                await conn.execute(
                    radio_outbound.update()
                    .where(radio_outbound.c.outbound_id == outbound_id)
                    .values(state=state.value, reason=reason[:300] if reason else None, updated_at=now)
                )

    async def pending_outbound(self) -> list[OutboundRecord]:
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    radio_outbound.select().where(
                        radio_outbound.c.esi_id == self.esi_id,
                        radio_outbound.c.state.in_([OutboundState.QUEUED.value, OutboundState.SENDING.value]),
                    )
                )
            ).all()
        return [_outbound(r) for r in rows]

    # ------------------------------------------------------------------ devices
    async def upsert_device(
        self,
        eui64: str,
        state: DeviceState,
        *,
        nwk: int | None = None,
        reason: str | None = None,
        device_type: str | None = None,
        at: float | None = None,
    ) -> None:
        key = store_eui64(eui64)
        when = datetime.now(UTC) if at is None else _dt(at)
        async with self.store.engine.begin() as conn:
            known = (
                await conn.execute(
                    sa.select(han_devices.c.id).where(han_devices.c.esi_id == self.esi_id, han_devices.c.eui64 == key)
                )
            ).first()
            if known is None:
                await conn.execute(
                    han_devices.insert().values(
                        esi_id=self.esi_id,
                        eui64=key,
                        device_type=device_type or UNKNOWN_DEVICE_TYPE,
                        status=DeviceStatus(state.value).value,
                        last_reason=reason[:300] if reason else None,
                        party_id=None,
                        created_at=when,
                        updated_at=when,
                    )
                )
            else:
                values: dict[str, Any] = {"status": DeviceStatus(state.value).value, "updated_at": when,
                                          "last_reason": reason[:300] if reason else None}
                if device_type:
                    values["device_type"] = device_type
                await conn.execute(han_devices.update().where(han_devices.c.id == known.id).values(**values))
            details: dict[str, Any] = {"updated_at": when}
            if nwk is not None:
                details["nwk"] = nwk
            updated = await conn.execute(
                radio_devices.update()
                .where(radio_devices.c.esi_id == self.esi_id, radio_devices.c.eui64 == key)
                .values(**details)
            )
            if not updated.rowcount:
                await conn.execute(radio_devices.insert().values(esi_id=self.esi_id, eui64=key, nwk=nwk, **details))

    def _device_query(self) -> sa.Select[Any]:
        return (
            sa.select(
                han_devices.c.eui64,
                han_devices.c.status,
                han_devices.c.updated_at,
                han_devices.c.device_type,
                radio_devices.c.nwk,
                han_devices.c.last_reason.label("reason"),
            )
            .select_from(
                han_devices.outerjoin(
                    radio_devices,
                    sa.and_(
                        radio_devices.c.esi_id == han_devices.c.esi_id,
                        radio_devices.c.eui64 == han_devices.c.eui64,
                    ),
                )
            )
            .where(han_devices.c.esi_id == self.esi_id)
            .order_by(han_devices.c.id)
        )

    async def devices(self, *, include_removed: bool = False) -> list[DeviceRecord]:
        query = self._device_query()
        if not include_removed:
            query = query.where(han_devices.c.status != DeviceStatus.REMOVED.value)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_device(r) for r in rows]

    async def device(self, eui64: str) -> DeviceRecord | None:
        query = self._device_query().where(han_devices.c.eui64 == store_eui64(eui64))
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _device(row)

    async def forget_devices(self) -> int:
        """Every device of the premise becomes REMOVED ("HAN decommissioned"); rows stay for history."""
        now = datetime.now(UTC)
        present = sa.select(han_devices.c.eui64).where(
            han_devices.c.esi_id == self.esi_id, han_devices.c.status != DeviceStatus.REMOVED.value
        )
        async with self.store.engine.begin() as conn:
            await conn.execute(
                radio_devices.update()
                .where(radio_devices.c.esi_id == self.esi_id, radio_devices.c.eui64.in_(present.scalar_subquery()))
                .values(nwk=None, updated_at=now)
            )
            result = await conn.execute(
                han_devices.update()
                .where(han_devices.c.esi_id == self.esi_id, han_devices.c.status != DeviceStatus.REMOVED.value)
                .values(status=DeviceStatus.REMOVED.value, last_reason="HAN decommissioned", updated_at=now)
            )
        return int(result.rowcount or 0)


def _outbound(row: Any) -> OutboundRecord:
    return OutboundRecord(row.outbound_id, zigpy_eui64(row.eui64), OutboundState(row.state), row.reason)


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        eui64=zigpy_eui64(row.eui64),
        state=DeviceState(row.status),
        updated_at=row.updated_at.timestamp(),
        nwk=row.nwk,
        reason=row.reason,
        device_type=row.device_type,
    )
