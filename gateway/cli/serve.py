"""`hangw serve`: run the gateway's HTTP service (API, consent pages, metrics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config import ConfigError, load_config


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
    app = create_app(config)
    uvicorn.run(app, host=config.server.host, port=config.server.port, log_config=None,
                access_log=False, server_header=False)
    return 0
