"""The premise's HAN devices as the meter knows them (issue 13): GET /v1/premises/{esi_id}/han/devices.

Without `refresh`, the gateway's records. With `refresh=true` the premise's route asks the meter
for its live list (ams_adapters/inventory.py), and the answer shows both and where they differ
(gateway/domain/han_reconcile.py). Who may ask and what they see is the device listing's rule: a
third party sees the devices it provisioned, and a count of the others. A refresh reaches the
meter, so it is audited like the other HAN operations; concurrent refreshes of one premise share
one question to the meter.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ams_adapters.contract import Route
from ams_adapters.inventory import HanInventory, InventoryNotSupported, InventoryUnavailable, han_inventory
from gateway.api.deps import Svc, Who, provisioned_by
from gateway.api.inventory_schemas import REFRESH_PROBLEMS, HanInventoryOut
from gateway.api.params import EsiIdPath
from gateway.api.policy import PolicyRoute
from gateway.api.schemas import PROBLEM_RESPONSES
from gateway.authz import Decision
from gateway.domain.han_reconcile import reconcile
from gateway.domain.records import HanDevice
from gateway.errors import Conflict, FieldError, GatewayError
from gateway.pipeline.dispatcher import RouteSet
from gateway.store.store import Store

log = logging.getLogger(__name__)
REFRESH_ACTION = "refresh_han_inventory"
"""The audit log's action for a refresh (the authorization itself is view_devices)."""
RECORDS_PAGE = 500

router = APIRouter(route_class=PolicyRoute, prefix="/v1", responses=PROBLEM_RESPONSES, tags=["provisioning"])


class InventoryProblem(GatewayError):
    title = "The meter's HAN devices could not be read"

    def __init__(self, status: int, detail: str, *, code: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail, code=code)
        self.status = status
        self.retry_after = None if retry_after_s is None else max(1, math.ceil(retry_after_s))


def _problem(route: str, exc: InventoryUnavailable) -> InventoryProblem:
    if exc.timed_out:
        return InventoryProblem(504, f"route {route!r}: {exc.reason}", code="meter_did_not_answer")
    if exc.refused:
        return InventoryProblem(502, f"route {route!r} refused: {exc.reason}", code="inventory_refused")
    return InventoryProblem(503, f"route {route!r}: {exc.reason}", code="inventory_unavailable",
                            retry_after_s=exc.retry_after_s)


class MeterInventory:
    """Asks the premise's route; one question per premise at a time, its answer shared."""

    def __init__(self, routes: RouteSet) -> None:
        self.routes = routes
        self._asking: dict[tuple[int, str], asyncio.Task[HanInventory]] = {}

    async def ask(self, esi_id: str) -> tuple[HanInventory, str]:
        route = self.routes.for_premise(esi_id)
        if route is None:
            # As a route without the operation: this gateway cannot ask this meter, and retrying
            # does not change that (the operator's [routes] configuration does).
            raise Conflict(f"no route reaches premise {esi_id}: the gateway cannot ask its meter",
                           code="route_cannot_report_inventory", errors=[FieldError(
                               "esi_id", "route_cannot_report_inventory",
                               "a premise that one of the gateway's routes reaches ([routes])", esi_id)])
        name = route.capabilities.name
        key = (id(route), esi_id)
        task = self._asking.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask(route, esi_id))
            self._asking[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        try:
            # shielded: one caller hanging up does not cancel the others' question
            return await asyncio.shield(task), name
        except InventoryNotSupported as exc:
            raise Conflict(str(exc), code="route_cannot_report_inventory", errors=[FieldError(
                "esi_id", "route_cannot_report_inventory",
                f"a premise whose route can report its meter's HAN devices; route {name!r}: {exc.why}",
                esi_id)]) from None
        except InventoryUnavailable as exc:
            raise _problem(name, exc) from None

    def _finished(self, key: tuple[int, str], task: asyncio.Task[HanInventory]) -> None:
        self._asking.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have hung up before the answer

    @staticmethod
    async def _ask(route: Route, esi_id: str) -> HanInventory:
        try:
            return await han_inventory(route, esi_id)
        except (InventoryNotSupported, InventoryUnavailable):
            raise
        except Exception as exc:  # a route's own failure is the route's, not the caller's
            log.exception("route %s failed the HAN inventory of %s", route.capabilities.name, esi_id)
            raise InventoryUnavailable(f"route error: {exc!r}", retry_after_s=5.0) from exc


async def _records(store: Store, esi_id: str) -> list[HanDevice]:
    out: list[HanDevice] = []
    cursor = None
    while True:
        page = await store.list_devices(esi_id, cursor=cursor, limit=RECORDS_PAGE)
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@router.get("/premises/{esi_id}/han/devices", response_model=HanInventoryOut, responses=REFRESH_PROBLEMS)
async def han_devices(
    esi_id: EsiIdPath, svc: Svc, who: Who, request: Request,
    refresh: Annotated[bool, Query(description="ask the meter now, through the premise's route, and show "
                                               "where its list and the gateway's records differ")] = False,
) -> HanInventoryOut:
    """The premise's HAN devices: the gateway's records and, with `refresh=true`, the meter's own
    live list (EUI-64, device type, SE version, join state, last seen, link quality where known)
    and the differences: `unknown_to_meter` (on record, the meter does not know it),
    `not_provisioned` (the meter has it, it was never provisioned here), `state_differs`."""
    # Allowed by the policy (VIEW_DEVICES); a third party sees the devices it provisioned only.
    inventory, route = None, None
    if refresh:
        decision: Decision = request.state.decision
        await svc.store.append_audit(at=svc.clock.now(), principal=who, action=REFRESH_ACTION, esi_id=esi_id,
                                     device_eui64=None, agreement_id=decision.agreement_id, allowed=True,
                                     reason=decision.reason)
        asker: MeterInventory = request.app.state.meter_inventory
        inventory, route = await asker.ask(esi_id)
    # Read after the meter answered: a provisioning event that came meanwhile is in the records.
    view = reconcile(await _records(svc.store, esi_id), inventory, party_id=provisioned_by(who))
    return HanInventoryOut.of(esi_id, view, inventory, route)
