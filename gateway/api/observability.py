"""Health, readiness, Prometheus metrics and the access log, as one lean ASGI middleware."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.policy import PolicyRoute
from gateway.api.schemas import HealthOut, ReadyOut

access_log = logging.getLogger("gateway.access")
router = APIRouter(route_class=PolicyRoute, tags=["operations"])


class Metrics:
    """Per-app registry, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hangw_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("hangw_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.agreement_events = Counter("hangw_agreement_lifecycle_total",
                                        "Agreement state changes made by the lifecycle timer",
                                        ["event"], registry=self.registry)
        self.route_owner = Gauge("hangw_route_owner", "1 while this instance drives a route only one "
                                 "instance may drive (a local radio), 0 while it stands by",
                                 ["route"], registry=self.registry)

    def track_ownership(self, routes: Iterable[Any]) -> None:
        """Routes with one physical owner (gateway/pipeline/single_owner.py) report their role."""
        for route in routes:
            if getattr(route, "role", None) is not None:
                self.route_owner.labels(route.capabilities.name).set_function(_owner_gauge(route))


def _owner_gauge(route: Any) -> Callable[[], float]:
    return lambda: 1.0 if route.role == "owner" else 0.0


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            # The route template, never the raw path: ESI IDs and tokens must not become labels.
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], name, str(status[0])).inc()
            self.metrics.latency.labels(scope["method"], name).observe(elapsed)
            principal = getattr(scope.get("state", {}).get("principal"), "role", None)
            access_log.info("%s %s %s", scope["method"], name, status[0], extra={
                "method": scope["method"], "route": name, "status": status[0],
                "ms": round(elapsed * 1000, 2), "role": principal})


@router.get("/healthz", response_model=HealthOut)
async def health() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut,
            responses={503: {"model": ReadyOut, "description": "the store does not answer, or its schema is old"}})
async def ready(request: Request) -> JSONResponse:
    """Ready to serve: the store answers and its schema is current."""
    svc = request.app.state.services
    try:
        await svc.store.ping()
        revision = await svc.store.schema_revision()
    except Exception as exc:  # any store failure means "not ready"; the reason is reported
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    body: dict[str, str] = {"status": "ready", "schema_revision": revision}
    mqtt_api = getattr(request.app.state, "mqtt_api", None)
    if mqtt_api is not None:
        client = mqtt_api.client
        if not mqtt_api.ready.is_set():
            body["mqtt_api"] = "connecting"  # never connected yet: the REST API serves meanwhile
        elif client is not None and not client.connected:
            # Connected once, lost since (paho reconnects in the background). Reported, not a 503:
            # every instance shares the broker, so taking this one out of a load balancer would stop
            # the REST API too without bringing MQTT back (docs/operator.md, readiness).
            body["mqtt_api"] = "disconnected"
            body["mqtt_api_reason"] = (f"MQTT broker {client.where}: disconnected "
                                       f"({client.disconnected_because or 'connection lost'}); reconnecting")
        else:
            body["mqtt_api"] = "connected"
    return JSONResponse(body)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
