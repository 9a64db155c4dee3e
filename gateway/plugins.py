"""Parts of `hangw` that another package provides, found by name through entry points
(`importlib.metadata`), so the gateway never imports them: the simulated field's commands (`hangw demo`,
`hangw sim-field`, `hangw sim …`) and its routes (`routes.kind = "simulated"` / `"simulated_remote"`)
live in the `sandbox` package, which registers them in pyproject.toml. An installation without them
answers with `PluginNotInstalled` naming the command or route kind, not an import error.

`pip install -e .` (scripts/install, scripts/test) writes the entry points.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

COMMANDS = "hangw.commands"
"""Entry points named for their command (`demo`, `sim-field`; `sim.<name>` under `hangw sim`), each a
`register(subparsers) -> None` as gateway/cli's own command modules have."""
ROUTES = "hangw.routes"
"""Entry points named for a `routes.kind`, each a factory `(RoutesConfig) -> Route`."""

# Commands and route kinds the gateway's own docs name, with the package that provides them: when
# one is missing, `hangw` still lists it and says what to install instead of "invalid choice".
EXPECTED_COMMANDS = {"demo": "sandbox", "sim-field": "sandbox", "sim": "sandbox"}


class PluginNotInstalled(LookupError):
    """A command or route kind whose entry point is not installed."""

    def __init__(self, what: str, name: str, group: str, package: str = "sandbox") -> None:
        self.what, self.name, self.group = what, name, group
        super().__init__(f"{what} {name!r} is not installed: no entry point {name!r} in group {group!r} "
                         f"(the {package} package provides it; `pip install -e .` from the source tree "
                         "installs it)")


def plugins(group: str) -> list[EntryPoint]:
    """The installed entry points of `group`, sorted by name (a stable `hangw --help`)."""
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_plugin(group: str, name: str, what: str) -> Any:
    """The object entry point `name` of `group` names; PluginNotInstalled when there is none."""
    for ep in entry_points(group=group, name=name):
        return ep.load()
    raise PluginNotInstalled(what, name, group)
