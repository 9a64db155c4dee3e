"""`hangw serve`: run the gateway's HTTP service (API, consent pages, metrics)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.pipeline.config import RouteKind

if TYPE_CHECKING:
    from gateway.pipeline.dispatcher import RouteSet


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway service (REST API, consent "
                                   "pages, /metrics)")
    parser.add_argument("-c", "--config", type=Path, help="TOML config file (HANGW_… "
                        "environment variables override it)")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
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
    setup_logging(config.log.level, json_lines=config.log.json_lines)

    async def serve() -> None:
        # Routes are built on the running loop (a simulated field schedules its timers on it).
        routes = build_routes(config)
        app = create_app(config, routes=routes)
        server = uvicorn.Server(uvicorn.Config(app, host=config.server.host, port=config.server.port,
                                               log_config=None, access_log=False, server_header=False))
        await server.serve()

    from ams_adapters.contract import ContractError
    from gateway.device_keys import DeviceKeyError

    try:
        asyncio.run(serve())
    except ContractError as exc:  # e.g. a callback certificate that cannot be read
        print(f"routes: {exc}", file=sys.stderr)
        return 2
    except DeviceKeyError as exc:  # a malformed device key: link keys could not be stored
        print(exc, file=sys.stderr)
        return 2
    return 0


def build_routes(config: GatewayConfig) -> RouteSet:
    """The routes `routes.kind` names. The simulated field is built here, in the command line,
    so that the gateway itself never imports the simulators."""
    from gateway.pipeline.dispatcher import RouteSet

    kind = config.routes.kind
    if kind is RouteKind.SIMULATED:
        from ams_adapters.simulated import SimulatedRoute
        from gateway.cli.simfield import ScaledClock, build_field, premises

        field, _devices = build_field(ScaledClock(config.routes.simulated_speed),
                                      premises(config.routes.simulated_premises_per_tdsp))
        return RouteSet(SimulatedRoute(field, now=time.time))
    if kind is RouteKind.SIMULATED_REMOTE:
        from ams_adapters.simulated import RemoteSimulatedRoute

        return RouteSet(RemoteSimulatedRoute(config.routes.url))
    if kind is RouteKind.ADAPTERS:
        from gateway.pipeline.adapter_routes import build_adapter_routes

        routes, _adapters = build_adapter_routes(config.routes)
        return routes
    return RouteSet()
