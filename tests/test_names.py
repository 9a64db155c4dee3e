"""One name, one thing: no top-level class, enum or type alias name is defined twice across the
production packages (issue 12). Two `RequestKind`s or two `Clock`s that mean different things make
a reader (and an import completion) pick the wrong one; a concept defined twice drifts apart.

Walks the source with `ast` (nothing is imported): a definition is a top-level `class NAME` or a
top-level assignment to a CapWords name (`InboundEvent = A | B`, `Uplink = Callable[...]`).
Imports are not definitions, so a re-export (`from x import NAME`) never counts.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "ams_adapters", "zigbee_se", "simulators", "sandbox")

# The same name may be defined twice only when both are one thing (a real re-export kept as an
# assignment, e.g. `Foo = other.Foo` for a documented public path). None today.
REEXPORTS: dict[str, frozenset[str]] = {}

# Two meanings still under one name while a rename is under way elsewhere (say which side gets the new
# name); remove the entry with the rename: `test_no_stale_entries` fails once the name is defined only
# once. None today.
PENDING: dict[str, str] = {}


def _defined_names(tree: ast.Module) -> list[tuple[str, int]]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.append((node.name, node.lineno))
            continue
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        elif type(node).__name__ == "TypeAlias":  # `type X = ...` (Python 3.12+)
            targets = [node.name]  # type: ignore[attr-defined]
        else:
            continue
        for target in targets:
            # CapWords only: CONSTANTS and module-private names are not concepts.
            if isinstance(target, ast.Name) and target.id[0].isupper() and not target.id.isupper():
                names.append((target.id, node.lineno))
    return names


def definitions(root: Path, packages: tuple[str, ...]) -> dict[str, list[str]]:
    """Every top-level definition name and where it is (`path:line`)."""
    found: dict[str, list[str]] = defaultdict(list)
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name, line in _defined_names(tree):
                found[name].append(f"{path.relative_to(root).as_posix()}:{line}")
    return found


def duplicates(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: places for name, places in found.items() if len(places) > 1}


def test_no_name_is_defined_twice_for_different_things() -> None:
    found = definitions(ROOT, PACKAGES)
    assert len(found) > 300, "the walk found too few definitions to mean anything"
    twice = {name: places for name, places in duplicates(found).items()
             if frozenset(p.split(":")[0] for p in places) != REEXPORTS.get(name) and name not in PENDING}
    assert not twice, "one name, several things; rename all but one to say what each is:\n" + "\n".join(
        f"  {name}: {', '.join(places)}" for name, places in sorted(twice.items()))


def test_no_stale_entries() -> None:
    """An allow-list entry whose name is defined once (or is gone) must go: it would hide a new
    duplicate of that name."""
    dup = duplicates(definitions(ROOT, PACKAGES))
    stale = [name for name in (*REEXPORTS, *PENDING) if name not in dup]
    assert not stale, f"defined once now, remove from the list: {stale}"
    moved = [name for name, path in PENDING.items() if not any(p.startswith(path + ":") for p in dup[name])]
    assert not moved, f"the pending side moved; say where it is now: {moved}"


def test_the_walk_sees_classes_and_aliases_not_imports(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "a.py").write_text(
        "import enum\nclass Clock:\n    pass\nclass Kind(enum.Enum):\n    A = 1\nEvent = int | str\nLIMIT = 3\n")
    (tmp_path / "two" / "b.py").write_text(
        "from one.a import Clock as Clock, Kind\n"  # imports: re-exports, not definitions
        "class Kind:\n    pass\nEvent: type = bytes\nLIMIT = 4\n_Private = 1\n")
    dup = duplicates(definitions(tmp_path, ("one", "two")))
    assert dup == {"Kind": ["one/a.py:4", "two/b.py:2"], "Event": ["one/a.py:6", "two/b.py:4"]}


def test_the_head_end_request_kinds_are_the_operation_and_provisioning_kinds() -> None:
    """The wire layer cannot import the route contract (it is pure, shared with the emulators), so
    it spells out the union of the contract's two kinds: held equal here, value for value."""
    from ams_adapters.contract import OperationKind, ProvisioningKind
    from ams_adapters.wire.common import HeadEndRequestKind

    assert {k.value for k in HeadEndRequestKind} == (
        {k.value for k in OperationKind} | {k.value for k in ProvisioningKind} | {"han_inventory", "meter_read"})
    assert not {k.value for k in OperationKind} & {k.value for k in ProvisioningKind}
