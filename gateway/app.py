"""The application factory: `create_app(config)` wires store, mail, services and routes.

The request pipeline (next issue) builds on the same `Services` (app.state.services) and on
`gateway.authz.authorize`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.agreements import AgreementService
from gateway.api import (
    consent_pages,
    error_docs,
    routes_agreements,
    routes_device_writes,
    routes_espi,
    routes_events,
    routes_inventory,
    routes_meter_reads,
    routes_parties,
    routes_premises,
    routes_provisioning,
    routes_requests,
    routes_usage,
    routes_usage_reports,
)
from gateway.api.deps import Services
from gateway.api.observability import Metrics, MetricsMiddleware
from gateway.api.observability import router as ops_router
from gateway.api.policy import PolicyRoute
from gateway.api.problems import install_handlers, set_problem_docs_url
from gateway.api.ratelimit import make_buckets
from gateway.clock import Clock, SystemClock
from gateway.config import GatewayConfig, ServerRole
from gateway.device_keys import DeviceKeyError, LinkKeyCipher, load_cipher
from gateway.gc_startup import freeze_startup_objects, thaw_startup_objects
from gateway.logs import redact_link_tokens
from gateway.mail import Mailer, make_mailer
from gateway.meter_reads import MeterReadService, MeterReadWorker
from gateway.mqtt_api.service import MqttApi
from gateway.pages import customer as customer_pages
from gateway.pages import dashboard as dashboard_pages
from gateway.pages import field as field_pages
from gateway.pages import language as language_pages
from gateway.pages import my_data as my_data_pages
from gateway.pages import operator as operator_pages
from gateway.pages import render as page_rendering
from gateway.pages import sign_in_link as sign_in_link_pages
from gateway.pages.keys import PageKeys
from gateway.pipeline.dispatcher import Dispatcher, RouteSet
from gateway.pipeline.provisioning import ProvisioningSender
from gateway.pipeline.webhooks import WebhookSender, seal_webhook_secrets
from gateway.rendering import make_templates
from gateway.store import event_retention
from gateway.store.store import Store, open_store
from gateway.usage import IngestionRunning, UsageService
from gateway.usage_reports import ReportWorker

log = logging.getLogger(__name__)

DESCRIPTION = """\
Third parties invite customers to agreements and act on the premises those agreements cover.
Authenticate with `Authorization: Bearer <token>`. Errors are RFC 9457 problem details
(`application/problem+json`) with field-level `errors`. Every POST and PUT honours `Idempotency-Key`.
Third parties are rate limited per party (429 with `Retry-After`).
"""


async def _lifecycle_loop(svc: Services, metrics: Metrics) -> None:
    """Run the agreement timers every `lifecycle_interval_seconds` until cancelled."""
    interval = svc.config.agreements.lifecycle_interval_seconds
    while True:
        try:
            report = await svc.agreements.run_lifecycle()
            for event in ("expired", "completed", "reminded", "renewals_lapsed", "mails_sent",
                          "mails_failed"):
                count = getattr(report, event)
                if count:
                    metrics.agreement_events.labels(event).inc(count)
        except Exception:  # a failed pass is logged and retried at the next tick
            log.exception("agreement lifecycle pass failed")
        await asyncio.sleep(interval)


async def _retention_loop(svc: Services) -> None:
    """Sweep the event log past `[events] retention_days` every `sweep_interval_seconds` (one
    instance at a time: a lease; gateway/store/event_retention.py)."""
    cfg = svc.config.events
    holder = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    while True:
        try:
            report = await event_retention.sweep(
                svc.store.engine, now=svc.clock.now(), retention=timedelta(days=cfg.retention_days), holder=holder,
                batch_size=cfg.sweep_batch_size, max_batches=cfg.sweep_max_batches)
            if report.deleted:
                log.info("event retention: %d event(s) older than %d days deleted in %d batch(es)",
                         report.deleted, cfg.retention_days, report.batches)
        except Exception:  # a failed pass is logged and retried at the next tick
            log.exception("event retention sweep failed")
        await asyncio.sleep(cfg.sweep_interval_seconds)


async def _usage_loop(usage: UsageService, interval: float) -> None:
    """Fetch the Energy Data agreements' missing usage every `interval` seconds until cancelled."""
    while True:
        try:
            report = await usage.run_once()
            if report.errors:
                log.warning("usage ingestion: %d premise(s) not read, e.g. %s", len(report.errors),
                            report.errors[0]["reason"])
        except IngestionRunning:  # another instance's pass: this tick is its
            log.debug("usage ingestion: another instance is running the pass")
        except Exception:  # a failed pass is logged and retried at the next tick
            log.exception("usage ingestion pass failed")
        await asyncio.sleep(interval)


def create_app(
    config: GatewayConfig,
    *,
    store: Store | None = None,
    mailer: Mailer | None = None,
    clock: Clock | None = None,
    run_timers: bool = True,
    routes: RouteSet | None = None,
) -> FastAPI:
    """The ASGI app. Without `store`, it opens (and migrates) `config.storage_url` at startup."""
    clock = clock or SystemClock()
    redact_link_tokens()  # consent links carry single-use tokens; the access log prints paths
    mailer = mailer or make_mailer(config.mail, config.mbox_path)
    metrics = Metrics()
    # A malformed device key stops the gateway here; a missing one only refuses provisioning.
    cipher: LinkKeyCipher | None = None
    try:
        cipher = load_cipher(config.security.device_key_secret, config.security.device_key_file)
    except DeviceKeyError as exc:
        if exc.value:
            raise
        log.warning("HAN provisioning and webhook registration are refused, and queued mail bodies are "
                    "stored in clear, until a device key is configured: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        if own:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        the_store = store if store is not None else await open_store(config.storage_url)
        if cipher is not None:
            # The purpose string derives the key: kept from when the mail queue was called the outbox.
            the_store.mail_sealer = cipher.for_purpose("mail outbox")
            the_store.secret_sealer = cipher.for_purpose("webhook secrets")
            await seal_webhook_secrets(the_store)
        templates = make_templates()
        svc = Services(
            config=config, store=the_store, mailer=mailer, clock=clock, templates=templates,
            agreements=AgreementService(the_store, mailer, config, templates, clock),
            rate_limits=make_buckets(the_store, config.rate_limit.requests_per_second,
                                     config.rate_limit.burst, config.rate_limit.shared))
        app.state.services = svc
        # The pages' keys (signed session cookie, customer links): read or made once at start.
        page_keys = PageKeys.from_config(config)
        app.state.page_keys = page_keys
        svc.agreements.customer_link = lambda email: (
            f"{config.server.public_url}/my/{page_keys.customer_link_token(email, clock.now())}")
        # Role `api` runs no background work: the workers pick up what it stores.
        works = config.server.role is not ServerRole.API
        timer = asyncio.create_task(_lifecycle_loop(svc, metrics)) if run_timers and works else None
        retention = (asyncio.create_task(_retention_loop(svc))
                     if run_timers and works and config.events.retention_days > 0 else None)
        # The request pipeline: the delivery queue's dispatcher (with the routes given, or none: requests
        # queue until a route is configured) and the webhook sender.
        route_set = routes or RouteSet()
        dispatcher = Dispatcher(the_store, route_set, config.pipeline, clock)
        sender = WebhookSender(the_store, config.pipeline, clock)
        provisioning = ProvisioningSender(the_store, route_set, config.pipeline, clock, cipher)
        dispatcher.on_provisioning = provisioning.on_update
        app.state.dispatcher = dispatcher
        app.state.provisioning = provisioning
        app.state.meter_inventory = routes_inventory.MeterInventory(route_set)
        app.state.usage = UsageService(the_store, route_set, clock, concurrency=config.usage.ingest_concurrency)
        app.state.meter_reads = MeterReadService(the_store, config.usage, clock)
        meter_read_worker = MeterReadWorker(the_store, route_set, config.usage, clock)
        app.state.meter_read_worker = meter_read_worker if works else None
        report_worker = ReportWorker(
            the_store, app.state.usage, clock, config.data_dir,
            lease=timedelta(seconds=config.usage.report_lease_seconds),
            retention=timedelta(days=config.usage.report_retention_days),
            chunk_premises=config.usage.report_chunk_premises, public_url=config.server.public_url)
        app.state.report_worker = report_worker if works else None
        # Reports are produced by the workers (a queue, like the dispatcher's): not a timer.
        reporting = (asyncio.create_task(report_worker.run(config.usage.report_poll_seconds))
                     if works else None)
        every = config.usage.ingest_interval_seconds
        ingest = (asyncio.create_task(_usage_loop(app.state.usage, every))
                  if run_timers and works and every > 0 else None)
        mqtt_api = None
        if config.mqtt_api.enabled:
            mqtt_api = MqttApi(svc, config.mqtt_api, serve_requests=config.server.role is not ServerRole.WORKER,
                               publish_events=works, dispatcher=lambda: app.state.dispatcher if works else None)
            await mqtt_api.start()  # connects in the background: the REST API does not wait for the broker
        app.state.mqtt_api = mqtt_api
        if works:
            await dispatcher.start()
            metrics.track_ownership(route_set.all())
            await sender.start()
            await provisioning.start()  # after the dispatcher: it started the routes
            await meter_read_worker.start()
        freeze_startup_objects()  # what start-up built is left out of every collection
        try:
            yield
        finally:
            thaw_startup_objects()
            if mqtt_api is not None:
                await mqtt_api.close()
            if works:
                await meter_read_worker.close()
                await provisioning.close()
                await sender.close()
                await dispatcher.close()
            for task in (timer, ingest, retention, reporting):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            # A graceful stop hands back the mail claims cut short (the dispatcher, webhook and
            # provisioning senders hand back theirs in `close`).
            if await svc.agreements.mail_sender.release_claims():
                log.info("claimed mails handed back to the other instances")
            if own:
                await the_store.close()

    app = FastAPI(title="HAN gateway", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.router.route_class = PolicyRoute  # the app's own pages declare their policy too
    app.state.metrics = metrics
    app.state.link_key_cipher = cipher
    install_handlers(app)
    set_problem_docs_url(config.server.problem_docs_url)
    app.include_router(ops_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if config.server.role is ServerRole.WORKER:  # /healthz, /readyz and /metrics only
        return app
    for module in (routes_parties, routes_premises, routes_provisioning, routes_inventory, routes_device_writes,
                   routes_agreements, routes_requests, routes_events, routes_usage, routes_espi,
                   routes_meter_reads, routes_usage_reports):
        app.include_router(module.router)
    app.include_router(consent_pages.router)
    for pages in (language_pages, customer_pages, my_data_pages, sign_in_link_pages, dashboard_pages,
                  operator_pages, field_pages):
        app.include_router(pages.router)
    page_rendering.install(app)
    # The pages' own script (the request page's live updates): a file of the package, no CDN.
    app.mount("/pages/static", StaticFiles(directory=page_rendering.STATIC_DIR), name="pages-static")
    app.include_router(error_docs.router)
    # The docs page serves Swagger UI from the swagger-ui-bundle package, not from a CDN, so it
    # works on an isolated operator network.
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="HAN gateway API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png")

    return app
