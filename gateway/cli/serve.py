"""`hangw serve`: run the gateway's HTTP service (API, consent pages, metrics)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import ConfigError, GatewayConfig, ServerRole, load_config
from gateway.pipeline.config import RouteKind

if TYPE_CHECKING:
    from ams_adapters.contract import Route
    from gateway.pipeline.dispatcher import RouteSet
    from gateway.store.store import Store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway service (REST API, consent "
                                   "pages, /metrics)")
    parser.add_argument("-c", "--config", type=Path, help="TOML config file (HANGW_… "
                        "environment variables override it)")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    parser.add_argument("--role", choices=[r.value for r in ServerRole],
                        help="override server.role: api (HTTP API only), worker (background work, "
                             "/healthz and /metrics only) or all (both, the default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `hangw --help` and other subcommands stay quick to start.
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import setup_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if args.role:
        config.server.role = ServerRole(args.role)
    if config.server.role is not ServerRole.ALL and not config.storage_url.startswith("postgresql"):
        # One instance per SQLite file: an api instance alone would never send, a worker alone never accept.
        print(f"server.role = {config.server.role.value!r}: a SQLite database takes one instance, which does "
              "everything (role 'all'); the api and worker roles need storage.url = postgresql+asyncpg://…",
              file=sys.stderr)
        return 2
    setup_logging(config.log.level, json_lines=config.log.json_lines)

    async def serve() -> None:
        from gateway.store.instance_lock import hold_serve_lock
        from gateway.store.store import open_store

        # The store is opened here, not by the app, because the radio route keeps its device
        # inventory and outbound records in it too.
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Held until the process ends (its file stays open): a SQLite file takes one instance.
        serve_lock = hold_serve_lock(config.storage_url)
        store = await open_store(config.storage_url)
        try:
            # Routes are built on the running loop (a simulated field schedules its timers on it).
            routes = build_routes(config, store)
            app = create_app(config, store=store, routes=routes)
            server = uvicorn.Server(uvicorn.Config(app, host=config.server.host, port=config.server.port,
                                                   log_config=None, access_log=False, server_header=False))
            await server.serve()
        finally:
            await store.close()
            if serve_lock is not None:
                serve_lock.close()

    from ams_adapters.contract import ContractError
    from gateway.device_keys import DeviceKeyError
    from gateway.plugins import PluginNotInstalled
    from gateway.store.instance_lock import AlreadyServing

    try:
        asyncio.run(serve())
    except AlreadyServing as exc:
        print(exc, file=sys.stderr)
        return 2
    except ContractError as exc:  # e.g. a callback certificate that cannot be read
        print(f"routes: {exc}", file=sys.stderr)
        return 2
    except DeviceKeyError as exc:  # a malformed device key: link keys could not be stored
        print(exc, file=sys.stderr)
        return 2
    except PluginNotInstalled as exc:  # routes.kind = "simulated" without the sandbox package
        print(exc, file=sys.stderr)
        return 2
    return 0


def build_routes(config: GatewayConfig, store: Store | None = None) -> RouteSet:
    """The routes `routes.kind` names, plus `[routes.radio]` for its ESI IDs (matched exactly,
    before any prefix). A kind the gateway does not build itself (`simulated`, `simulated_remote`)
    is a route factory found by name in the `hangw.routes` entry points (the sandbox package), so
    that the gateway never imports the simulators; PluginNotInstalled when none is installed."""
    from gateway.pipeline.dispatcher import RouteSet
    from gateway.plugins import ROUTES, load_plugin

    kind = config.routes.kind
    default: Route | None = None
    if kind not in (RouteKind.NONE, RouteKind.ADAPTERS):
        factory = load_plugin(ROUTES, kind.value, "routes.kind")
        default = factory(config.routes)
    by_prefix: dict[str, Route | None] = {}
    if kind is RouteKind.ADAPTERS:
        from gateway.pipeline.adapter_routes import build_adapter_routes
        from gateway.pipeline.route_items import StoredItems

        by_prefix = build_adapter_routes(config.routes, StoredItems(store) if store is not None else None)[0].by_prefix
    by_esi: dict[str, Route] = {}
    if config.routes.radio is not None:
        if store is None:
            raise ValueError("routes.radio: the radio route keeps its state in the gateway's store: pass the store")
        radio = build_owned_radio_route(config, store)
        by_esi = dict.fromkeys(config.routes.radio.esi_ids, radio)
    return RouteSet(default, by_prefix, by_esi=by_esi)


def build_radio_route(config: GatewayConfig, store: Store) -> Route:
    """The local-radio route of `[routes.radio]`, its state in the gateway's store."""
    from ams_adapters.radio import RadioConfig
    from ams_adapters.radio.route import RadioRoute
    from gateway.cli.radio.session import radio_database
    from gateway.store.route_state import GatewayRouteState

    section = config.routes.radio
    assert section is not None
    database = radio_database(config)
    database.parent.mkdir(parents=True, exist_ok=True)
    radio = RadioConfig(device=section.device, baudrate=section.baudrate, flow_control=section.flow,
                        channel=section.channel, pan_id=section.pan_id, database_path=str(database))
    return RadioRoute(radio, section.esi_ids, state=GatewayRouteState(store, section.esi_ids[0]),
                              backup_file=section.backup_file)


def build_owned_radio_route(config: GatewayConfig, store: Store) -> Route:
    """The radio route; on PostgreSQL, where several instances may be configured for the same
    coordinator, wrapped so that one instance at a time drives it (gateway/pipeline/single_owner.py).
    The owner lock is named for the premise the radio serves (its first ESI ID, where its device
    inventory and outbound records are kept): those rows must have one writer, and two instances
    naming the same premise name the same HAN, whatever path each uses to reach its coordinator.
    SQLite is one instance: the route as it is."""
    if store.single_writer:
        return build_radio_route(config, store)
    from gateway.pipeline.single_owner import SingleOwnerRoute
    from gateway.store.owner_lock import OwnerLock

    section = config.routes.radio
    assert section is not None
    interval = section.takeover_interval_seconds
    # A check that does not answer in time counts as a lost lock (the owner stops): give a busy
    # database room before calling it lost.
    lock = OwnerLock(store.engine, f"radio:{section.esi_ids[0]}", check_timeout_s=max(2.0, 2 * interval))
    return SingleOwnerRoute(lambda: build_radio_route(config, store), lock, section.esi_ids,
                            check_interval_s=interval)
