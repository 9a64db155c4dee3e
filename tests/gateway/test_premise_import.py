"""CSV premise import: per-row errors naming line, column and problem; re-import updates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.gateway.conftest import CENTERPOINT, ONCOR, PREMISES_CSV, Gateway

BAD_CSV = """esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter
10443720000000001,MTR-1,alice@example.test,Volt REP,residential,1.1,no
1044372000000001,MTR-X,x@example.test,,,,
10443720000000002,,not-an-email,,villa,2.0,maybe
29999990000000000,MTR-Z,z@example.test,,,,
10443720000000001,MTR-1,alice@example.test,Volt REP,residential,1.1,no
1008901000000000000004,MTR-4,carol@example.test,,residential,1.1,yes
"""


async def test_import_over_api_reports_each_bad_row(gateway: Gateway) -> None:
    report = await gateway.load_premises(BAD_CSV)
    assert report["rows"] == 6
    assert report["created"] == 2
    assert report["rejected_rows"] == 4
    errors = {(e["row"], e["column"]) : e for e in report["errors"]}
    assert set(errors) == {
        (3, "esi_id"), (4, "meter_number"), (4, "customer_email"), (4, "premise_class"),
        (4, "se_version"), (4, "enhanced_meter"), (5, "esi_id"), (6, "esi_id")}
    assert "17 digits" in errors[(3, "esi_id")]["problem"]
    assert errors[(4, "premise_class")]["value"] == "villa"
    assert "matches no TDSP" in errors[(5, "esi_id")]["problem"]
    assert "duplicate of line 2" in errors[(6, "esi_id")]["problem"]

    r = await gateway.client.get(f"/v1/premises/{CENTERPOINT}", headers=gateway.op)
    assert r.json()["tdsp"] == "centerpoint" and r.json()["enhanced_meter"] is True


async def test_reimport_updates_instead_of_duplicating(gateway: Gateway) -> None:
    first = await gateway.load_premises()
    assert first["created"] == 8 and first["errors"] == []
    again = await gateway.load_premises()
    assert again["created"] == 0 and again["unchanged"] == 8
    changed = PREMISES_CSV.replace("MTR-1,alice@example.test,Volt REP",
                                   "MTR-1B,alice@example.test,Other REP")
    third = await gateway.load_premises(changed)
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 7)
    r = await gateway.client.get("/v1/premises", headers=gateway.op, params={"limit": 500})
    items = r.json()["items"]
    assert len(items) == 8
    assert next(p for p in items if p["esi_id"] == ONCOR)["meter_number"] == "MTR-1B"


async def test_bad_header_is_refused(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/premises/import", content="esi,meter\n1,2\n",
                                  headers={**gateway.op, "Content-Type": "text/csv"})
    assert r.status_code == 422
    codes = {(e["code"], e["value"]) for e in r.json()["errors"]}
    assert ("missing_column", "esi_id") in codes and ("unknown_column", "esi") in codes


def test_cli_import_with_progress_bar_and_row_errors(tmp_path: Path) -> None:
    config = tmp_path / "hangw.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    csv_file = tmp_path / "premises.csv"
    csv_file.write_text(BAD_CSV)
    hangw = [sys.executable, "-m", "gateway", "admin", "-c", str(config)]
    done = subprocess.run([*hangw, "premises", "import", str(csv_file)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1  # some rows were rejected
    assert "6 rows: 2 created, 0 updated, 0 unchanged, 4 rejected" in done.stdout
    assert "6/6" in done.stderr and "row/s" in done.stderr  # tqdm's progress bar
    assert f"{csv_file}: line 3, column esi_id = '1044372000000001'" in done.stderr
    again = subprocess.run([*hangw, "premises", "import", "--no-progress", str(csv_file)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert "0 created, 0 updated, 2 unchanged, 4 rejected" in again.stdout
    assert "row/s" not in again.stderr
