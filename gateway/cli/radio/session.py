"""What every `hangw radio` command shares: the coordinator's config from the command line and the
gateway config, the gateway's route state for the premise, and the errors a technician can cause
mapped to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ams_adapters.radio import CoordinatorSession, RadioConfig
    from ams_adapters.radio.state import RouteStateStore
    from gateway.config import GatewayConfig
    from gateway.pipeline.config import PipelineConfig

# Heavy imports (zigpy, bellows, the store) stay inside the functions: hangw imports every CLI
# module at start (gateway/cli/__init__.py).

EXIT_FAILED, EXIT_USAGE, EXIT_NO_COORDINATOR = 1, 2, 3


class UsageError(ValueError):
    """A command-line value that cannot work: printed as is, exit code 2."""


@dataclass
class Session:
    """What one command works with: the coordinator's config and the gateway's route state."""

    radio: RadioConfig | None
    state: RouteStateStore | None
    esi_id: str | None
    pipeline: PipelineConfig  # the gateway's limits, which the send commands check as its API does


def _gateway_config(args: argparse.Namespace) -> GatewayConfig:
    from gateway.config import load_config

    config = load_config(args.config)  # HANGW_RADIO_… are not config keys (gateway.config)
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    return config


def _radio_config(args: argparse.Namespace, gateway: GatewayConfig, **extra: Any) -> RadioConfig:
    from ams_adapters.radio import RadioConfig

    configured = gateway.routes.radio
    device = args.device or (configured.device if configured else None)
    if not device:
        raise UsageError("--device: a serial path or socket://host:port is required (or [routes.radio] device)")
    database = args.database or str(radio_database(gateway))
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    baudrate = args.baudrate or (configured.baudrate if configured else 115200)
    flow = args.flow_control or (configured.flow if configured else None)
    return RadioConfig(device=device, baudrate=baudrate, flow_control=flow, database_path=database, **extra)


def radio_database(gateway: GatewayConfig) -> Path:
    """zigpy's database: [routes.radio] zigpy_database, else DATA_DIR/radio/zigpy.db."""
    configured = gateway.routes.radio
    if configured is not None and configured.zigpy_database is not None:
        return configured.zigpy_database
    return gateway.data_dir / "radio" / "zigpy.db"


def _esi_id(args: argparse.Namespace, gateway: GatewayConfig) -> str | None:
    if args.esi_id:
        return str(args.esi_id)
    configured = gateway.routes.radio
    return configured.esi_ids[0] if configured else None


def run(
    args: argparse.Namespace,
    job: Callable[[Session], Awaitable[int]],
    *,
    coordinator: bool = True,
    inventory: bool = False,
    **extra: Any,
) -> int:
    """Build the configs, open the gateway's store when the premise is known, run the job; map
    the errors a technician can cause to exit codes. `inventory`: the job changes or reads the
    device inventory, so the premise (--esi-id) is required."""
    from ams_adapters.radio import RadioConfigError, RadioError
    from gateway.config import ConfigError
    from gateway.store.route_state import PremiseNotFound
    from zigbee_se import EncodeError, InstallCodeError

    try:
        gateway = _gateway_config(args)
        radio = _radio_config(args, gateway, **extra) if coordinator else None
        esi_id = _esi_id(args, gateway)
        if inventory and esi_id is None:
            raise UsageError("--esi-id: which premise's HAN this is (or [routes.radio] esi_ids in --config)")
    except (ConfigError, RadioConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def main() -> int:
        if esi_id is None:
            return await job(Session(radio, None, None, gateway.pipeline))
        from gateway.store.route_state import GatewayRouteState
        from gateway.store.store import open_store

        gateway.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(gateway.storage_url)
        try:
            state = GatewayRouteState(store, esi_id)
            await state.check_premise()
            return await job(Session(radio, state, esi_id, gateway.pipeline))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (InstallCodeError, EncodeError, RadioConfigError, UsageError, PremiseNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, TimeoutError, RadioError) as exc:
        print(f"error: coordinator at {args.device}: {exc!r}", file=sys.stderr)
        return EXIT_NO_COORDINATOR
    except Exception as exc:
        if type(exc).__name__ == "NetworkNotFormed":
            print("error: no network on this coordinator: run `hangw radio form` first", file=sys.stderr)
            return EXIT_FAILED
        raise


async def start_coordinator(session: Session) -> CoordinatorSession:
    from ams_adapters.radio import CoordinatorSession

    assert session.radio is not None
    route = CoordinatorSession(session.radio, state=session.state)
    await route.start(form=False)
    return route
