"""Several `hangw serve` processes on one PostgreSQL database: what an operator runs behind a load
balancer (issue 14). Each instance has its own port and data directory (its own mail box); they
share the database and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.clock import SystemClock
from gateway.domain.model import Role
from gateway.store.store import open_store
from sandbox.ports import free_port
from sandbox.testbed import wait_http_sync


@dataclass
class Instance:
    base_url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]

    def mails(self) -> list[tuple[str, str]]:
        """(To, body) of the mails this instance sent (its own mbox)."""
        path = self.data_dir / "mail" / "outbox.mbox"
        if not path.exists():
            return []
        box = mailbox.mbox(path)
        try:
            out = []
            for message in box:
                payload = message.get_payload(decode=True)
                out.append((str(message["To"]), payload.decode() if isinstance(payload, bytes) else str(payload)))
            return out
        finally:
            box.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def instances(tmp_path: Path, pg_url: str, n: int, extra_toml: str = "") -> Iterator[list[Instance]]:
    """`n` gateway processes on the database at `pg_url` (migrated first, once, if not at head yet)."""
    asyncio.run(_migrate(pg_url))
    started: list[Instance] = []
    try:
        for i in range(n):
            port = free_port()
            data = tmp_path / f"instance{i}"
            data.mkdir()
            base = f"http://127.0.0.1:{port}"
            cfg = tmp_path / f"hangw{i}.toml"
            cfg.write_text(f'data_dir = "{data}"\n[storage]\nurl = "{pg_url}"\n[server]\nport = {port}\n'
                           f'public_url = "{base}"\n[log]\nlevel = "WARNING"\n{extra_toml}')
            log = tmp_path / f"serve{i}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", str(cfg)],
                                        stdout=out, stderr=subprocess.STDOUT)
            started.append(Instance(base, data, proc))
        for inst, i in zip(started, range(n), strict=True):
            wait_http_sync(f"{inst.base_url}/healthz", proc=inst.proc, log=tmp_path / f"serve{i}.log")
        yield started
    finally:
        for inst in started:
            _stop(inst.proc)


async def _migrate(pg_url: str) -> None:
    store = await open_store(pg_url)
    await store.close()


async def operator_token(pg_url: str) -> str:
    store = await open_store(pg_url, migrate_to=None)
    try:
        _c, token = await store.issue_credential(role=Role.OPERATOR, label="instances", now=SystemClock().now())
    finally:
        await store.close()
    return token


async def new_party(http: httpx.AsyncClient, op_token: str, name: str, duns: str) -> tuple[int, str]:
    op = {"Authorization": f"Bearer {op_token}"}
    r = await http.post("/v1/parties", headers=op, json={"name": name, "duns": duns,
                                                         "contact_email": f"api@{name.lower()}.test"})
    assert r.status_code == 201, r.text
    party_id: int = r.json()["id"]
    r = await http.post(f"/v1/parties/{party_id}/credentials", headers=op, json={"label": "t"})
    assert r.status_code == 201, r.text
    return party_id, r.json()["token"]


def consent_links(body: str, base: str) -> list[str]:
    return re.findall(re.escape(base) + r"/consent/[A-Za-z0-9_\-]+", body)
