"""The `hangw sim` command group, which several simulator CLI modules add to."""

from __future__ import annotations

import argparse
from typing import Any


def sim_subparsers(subparsers: Any) -> Any:
    """The `hangw sim` sub-command list: created by whichever simulator module registers first."""
    existing = subparsers.choices.get("sim")
    if existing is None:
        parser = subparsers.add_parser("sim", help="run simulators (coordinator, head-ends, …)")
        return parser.add_subparsers(dest="sim_command", metavar="SIMULATOR", required=True)
    for action in existing._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return existing.add_subparsers(dest="sim_command", metavar="SIMULATOR", required=True)
