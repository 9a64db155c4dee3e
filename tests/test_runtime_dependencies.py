"""Every third-party module the installed packages import is a declared runtime dependency.

A module that only a test extra brings in (as `cryptography` was, for `gateway/device_keys.py`) works
in the developer's venv and fails with ImportError on a production install of `pip install han-gateway`.
The check reads the imports from the source (every `import` statement, including the lazy ones inside
functions, which an import-everything test would miss) and maps each top-level module to the
distribution that provides it with `importlib.metadata.packages_distributions()`.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalize(name: str) -> str:
    # PEP 503: distribution names compare case-insensitively, with runs of -_. as one separator.
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    # PEP 508: the name is the leading run of letters, digits and -_. (before extras, versions, markers).
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unparsable requirement {requirement!r}"
    return _normalize(match.group(1))


def _first_party() -> set[str]:
    includes = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in includes}


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level module name -> the files of `package` that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_installed_packages_is_a_runtime_dependency() -> None:
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    first_party = _first_party()
    providers = packages_distributions()
    undeclared: list[str] = []
    checked: set[str] = set()
    for package in sorted(first_party):
        for module, files in sorted(_imports(package).items()):
            if module in sys.stdlib_module_names or module in first_party or module == "__future__":
                continue
            distributions = {_normalize(d) for d in providers.get(module, [])}
            assert distributions, f"{module} (imported by {sorted(files)}) is not installed in this venv"
            checked.add(module)
            if not distributions & declared:
                undeclared.append(f"{module} (from {sorted(distributions)}) imported by {sorted(files)}")
    # The walk must have seen the runtime dependencies at all, or the test passes on an empty tree.
    assert {"cryptography", "fastapi", "sqlalchemy", "zigpy"} <= checked
    assert not undeclared, "imported at run time but not in [project] dependencies:\n" + "\n".join(undeclared)


def test_the_requirement_parser_reads_extras_and_versions() -> None:
    # The check above is only as good as this parser: "sqlalchemy[asyncio]>=2.0" is sqlalchemy.
    assert _requirement_name("sqlalchemy[asyncio]>=2.0") == "sqlalchemy"
    assert _requirement_name("aiomqtt>=2.3,<3") == "aiomqtt"
    assert _requirement_name("Swagger_UI.Bundle >= 1") == "swagger-ui-bundle"
