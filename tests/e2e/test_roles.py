"""`hangw serve` instances seen from outside: a second instance on a SQLite file is refused (admin
commands still work beside the first); on PostgreSQL an `api` instance accepts requests and sends
nothing, a `worker` instance serves only /healthz, /readyz and /metrics and delivers what the `api`
instance accepted (counted at the simulated field, another process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sandbox.ports import free_port
from sandbox.testbed import wait_http
from tests.e2e.test_crash import _serve, _stop, consenting_party, simulated_field
from tests.e2e.test_instances import _operator_token


def _toml(data: Path, port: int, storage: str = "", routes: str = "", role: str = "all") -> str:
    return f"""data_dir = "{data}"
[server]
role = "{role}"
port = {port}
public_url = "http://127.0.0.1:{port}"
{f'[storage]{chr(10)}url = "{storage}"' if storage else ""}
[pipeline]
poll_interval_seconds = 0.05
[log]
level = "WARNING"
{routes}"""


async def test_a_second_instance_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_cfg, second_cfg = tmp_path / "a.toml", tmp_path / "b.toml"
    port = free_port()
    second_port = free_port()
    first_cfg.write_text(_toml(data, port))
    second_cfg.write_text(_toml(data, second_port))
    log = (tmp_path / "serve.log").open("ab")
    first = _serve(first_cfg, log)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        second = subprocess.run([sys.executable, "-m", "gateway", "serve", "-c", str(second_cfg)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2, second.stderr
        database = (data / "hangw.db").resolve()
        assert f"SQLite database {database} is already served by another `hangw serve` (pid {first.pid}" in \
            second.stderr, second.stderr
        # Nor can a SQLite database be split into an api and a worker instance.
        split = subprocess.run([sys.executable, "-m", "gateway", "serve", "-c", str(second_cfg), "--role", "api"],
                               capture_output=True, text=True, timeout=60, check=False)
        assert split.returncode == 2 and "server.role = 'api': a SQLite database takes one instance" in split.stderr, \
            split.stderr
        # The operator's own commands still work on the file the server holds.
        added = subprocess.run([sys.executable, "-m", "gateway", "admin", "-c", str(first_cfg), "party", "add",
                                "--name", "Beside", "--duns", "123456789", "--contact-email", "b@b.test"],
                               capture_output=True, text=True, timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        first.kill()  # kill -9: no clean-up runs, the kernel drops the lock with the process
        first.wait()
    again = _serve(second_cfg, log)
    try:
        await wait_http(f"http://127.0.0.1:{second_port}/healthz", timeout=60)
    finally:
        _stop(again)
        log.close()


async def test_api_and_worker_roles_split_the_work(tmp_path: Path, migrated_pg_url: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = (tmp_path / "serve.log").open("ab")
    api_port, worker_port = free_port(), free_port()
    api_base, worker_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    async with simulated_field(tmp_path, log) as meters:
        api_cfg, worker_cfg = tmp_path / "api.toml", tmp_path / "worker.toml"
        api_cfg.write_text(_toml(data, api_port, migrated_pg_url, meters.routes_toml, role="api"))
        worker_cfg.write_text(_toml(data, worker_port, migrated_pg_url, meters.routes_toml, role="worker"))
        api = _serve(api_cfg, log)
        worker = None
        try:
            await wait_http(f"{api_base}/healthz", timeout=60)
            op_token = await _operator_token(migrated_pg_url)
            async with httpx.AsyncClient(base_url=api_base, timeout=10) as http:
                me = await consenting_party(http, op_token, "simulated", meters, data=data, base=api_base,
                                            scopes=["text"])
                worker = _serve(worker_cfg, log)
                await wait_http(f"{worker_base}/healthz", timeout=60)
                esi = meters.premises[0][0]
                started = time.monotonic()
                r = await http.post("/v1/han-requests", headers=me, json={
                    "kind": "text", "esi_ids": [esi], "text": "split"})
                assert r.status_code == 202, r.text
                rid = r.json()["id"]
                while (s := (await http.get(f"/v1/han-requests/{rid}", headers=me)).json())[
                        "premises_by_state"] != {"delivered": 1}:
                    assert time.monotonic() - started < 15, s
                    await _sleep()
                print(f"text accepted by the api instance, delivered by the worker: "
                      f"{time.monotonic() - started:.2f} s")
            async with httpx.AsyncClient(base_url=worker_base, timeout=10) as w:
                assert (await w.get("/healthz")).status_code == 200
                assert (await w.get("/metrics")).status_code == 200
                assert (await w.get("/v1/parties", headers={"Authorization": f"Bearer {op_token}"})).status_code == 404
                assert (await w.get("/docs")).status_code == 404
            # Without a worker the api instance accepts and sends nothing.
            _stop(worker)
            worker = None
            async with httpx.AsyncClient(base_url=api_base, timeout=10) as http:
                r = await http.post("/v1/han-requests", headers=me, json={
                    "kind": "text", "esi_ids": [esi], "text": "waits"})
                assert r.status_code == 202, r.text
                await _sleep(1.5)
                s = (await http.get(f"/v1/han-requests/{r.json()['id']}", headers=me)).json()
                assert s["premises_by_state"] == {"queued": 1}, s
        finally:
            if worker is not None:
                _stop(worker)
            _stop(api)
            log.close()
    assert meters.texts == {f"{esi}|split": 1}, meters.texts


async def _sleep(seconds: float = 0.1) -> None:
    await asyncio.sleep(seconds)

