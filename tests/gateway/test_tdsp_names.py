"""One name per TDSP everywhere: the API (`tdsp` in premises and its `?tdsp=` filter, the OpenAPI enum),
`[routes.tdsp.<name>]`, the head-end profiles, the CLIs' `--tdsp`, the simulated field, the docs.

The API once said `aep_texas_central`/`aep_texas_north` where the config and profiles say
`aep_central`/`aep_north`: a client that read `tdsp` from a premise could not find its route table.
Premises stored under the old names are rewritten by migration 0012.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from ams_adapters.profiles import PROFILE_DIR, TDSPS, load_profile
from gateway.domain.esi_id import TDSP_PREFIXES, Tdsp
from gateway.pipeline.config import TdspRoutes
from gateway.store import migrate
from gateway.store.store import make_engine
from sandbox.simfield import TDSPS as FIELD_TDSPS
from tests.gateway.conftest import AEP_CENTRAL, AEP_NORTH, Gateway

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"oncor", "centerpoint", "aep_central", "aep_north", "tnmp"}


def test_every_layer_uses_the_same_tdsp_names() -> None:
    assert {t.value for t in Tdsp} == NAMES
    assert {row.tdsp.value for row in TDSP_PREFIXES} == NAMES
    assert set(TDSPS) == NAMES
    assert set(TdspRoutes.model_fields) == NAMES
    assert {name for name, _prefix, _length in FIELD_TDSPS} == NAMES
    assert {p.stem for p in PROFILE_DIR.glob("*.toml")} == NAMES
    for name in NAMES:
        assert load_profile(name).tdsp == name


@pytest.mark.parametrize("command", [["sim", "headend"], ["provision", "device"]])
def test_the_clis_offer_the_same_tdsp_names(command: list[str]) -> None:
    run = subprocess.run([sys.executable, "-m", "gateway", *command, "--help"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    choices = re.search(r"--tdsp \{([a-z_,]+)\}", run.stdout)
    assert choices, run.stdout
    assert set(choices.group(1).split(",")) == NAMES


async def test_the_api_names_aep_as_the_config_does(gateway: Gateway) -> None:
    await gateway.load_premises()
    for esi_id, name in ((AEP_CENTRAL, "aep_central"), (AEP_NORTH, "aep_north")):
        r = await gateway.client.get(f"/v1/premises/{esi_id}", headers=gateway.op)
        assert r.status_code == 200 and r.json()["tdsp"] == name
        r = await gateway.client.get("/v1/premises", headers=gateway.op, params={"tdsp": name})
        assert r.status_code == 200 and [p["esi_id"] for p in r.json()["items"]] == [esi_id]
    # The old name is not a second spelling: one name each.
    r = await gateway.client.get("/v1/premises", headers=gateway.op, params={"tdsp": "aep_texas_central"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tdsp"
    spec = (await gateway.client.get("/openapi.json")).json()
    [param] = [p for p in spec["paths"]["/v1/premises"]["get"]["parameters"] if p["name"] == "tdsp"]
    schema = param["schema"]
    enum = schema.get("enum") or next(s for s in schema["anyOf"] if "$ref" in s or "enum" in s).get("enum")
    if enum is None:
        ref = next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
        enum = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["enum"]
    assert set(enum) == NAMES


def test_no_source_doc_or_fixture_uses_the_old_names() -> None:
    old = re.compile(r"aep_texas_(central|north)|AEP_TEXAS_(CENTRAL|NORTH)")
    this_file = Path(__file__).resolve()
    migration = ROOT / "gateway/store/migrations/versions/0012_tdsp_names.py"
    hits = []
    for top in ("gateway", "ams_adapters", "zigbee_se", "simulators", "firmware_fixtures", "docs", "tests",
                "benchmarks", "scripts", "README.md"):
        base = ROOT / top
        for path in [base] if base.is_file() else base.rglob("*"):
            if not path.is_file() or path.resolve() in (this_file, migration) or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            hits += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                     if old.search(line)]
    assert hits == []


async def test_migration_renames_stored_premises_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    rows = {AEP_CENTRAL: "aep_texas_central", AEP_NORTH: "aep_texas_north", "10443720000000001": "oncor"}
    select = sa.text("SELECT esi_id, tdsp FROM premises ORDER BY esi_id")
    try:
        await migrate.upgrade(engine, "0011")
        async with engine.begin() as conn:
            for esi_id, tdsp in rows.items():
                await conn.execute(sa.text(
                    "INSERT INTO premises (esi_id, tdsp, meter_number, premise_class, enhanced_meter, status, "
                    "created_at, updated_at) VALUES (:e, :t, 'M', 'residential', false, 'active', "
                    "'2025-01-01 00:00:00', '2025-01-01 00:00:00')"), {"e": esi_id, "t": tdsp})
        await migrate.upgrade(engine, "0012")
        async with engine.connect() as conn:
            assert {row.esi_id: row.tdsp for row in await conn.execute(select)} == {
                AEP_CENTRAL: "aep_central", AEP_NORTH: "aep_north", "10443720000000001": "oncor"}

        def _downgrade(connection: Connection) -> None:
            command.downgrade(migrate.alembic_config(connection), "0011")

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade)
        async with engine.connect() as conn:
            assert {row.esi_id: row.tdsp for row in await conn.execute(select)} == rows
    finally:
        await engine.dispose()
