"""The operator's page: premises per TDSP; the routes' health — each route's circuit breaker, its
latest transport failure and transactions in flight (gateway/pages/route_health.py, this
instance's routes), and per TDSP the delivery queue and the newest failure reasons (the store's,
every instance's); and HAN devices whose provisioning is under way. An operator signs in on the
dashboard's sign-in form with an operator token (`Rel.OPERATOR_SESSION`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.deps import Svc
from gateway.api.policy import PolicyRoute
from gateway.pages.render import render, tr
from gateway.pages.route_health import route_health
from gateway.store import operations_view

router = APIRouter(route_class=PolicyRoute, include_in_schema=False)

FAILURES_SHOWN = 50
PROVISIONING_SHOWN = 200
QUEUE_STATES = ("queued", "submitted")  # waiting at the gateway, or at the route for its report


@router.get("/operator")
async def operator_page(request: Request, svc: Svc) -> Response:
    engine = svc.store.engine
    premises = await operations_view.premises_by_tdsp(engine)
    deliveries = await operations_view.deliveries_by_tdsp(engine)
    tdsps = sorted({t for t, _s in premises} | {t for t, _s in deliveries})
    premise_states = sorted({s for _t, s in premises})
    delivery_states = sorted({s for _t, s in deliveries})
    queue = {t: sum(n for (tt, s), n in deliveries.items() if tt == t and s in QUEUE_STATES) for t in tdsps}
    dispatcher = request.app.state.dispatcher
    return render(request, "operator.html", title=tr(request, "Operator view"), tdsps=tdsps, premises=premises,
                  routes=route_health(dispatcher.routes),
                  premise_states=premise_states, deliveries=deliveries, delivery_states=delivery_states,
                  queue=queue, failures=await operations_view.latest_failures(engine, FAILURES_SHOWN),
                  provisioning=await operations_view.provisioning_in_progress(engine, PROVISIONING_SHOWN))
