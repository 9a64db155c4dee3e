"""A gateway served in this process on a free loopback port, with a manual clock, and a client that
drives it as a third party and an operator would (HTTP only): for the tests and for benchmarks that
need a whole gateway in one process (benchmarks/pages.py). The tests' fixtures wrap it
(tests/gateway/conftest.py, which starts SQLite databases from a migrated copy)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mailbox
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet

from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config import GatewayConfig, parse_config
from gateway.domain.model import Role
from gateway.store.store import Store, open_store
from zigbee_se.install_code import expected_crc

PREMISES_CSV = """esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter
10443720000000001,MTR-1,alice@example.test,Volt REP,residential,1.1,no
10443720000000002,MTR-2,alice@example.test,Volt REP,residential,1.0,yes
10176990000000003,MTR-3,bob@example.test,Volt REP,small_commercial,1.1,no
1008901000000000000004,MTR-4,carol@example.test,Bayou REP,residential,1.1,no
10032780000000005,MTR-5,dave@example.test,,residential,,no
10204040000000006,MTR-6,erin@example.test,,residential,1.0,no
10400510000000007,MTR-7,frank@example.test,,residential,1.1,no
10443720000000008,MTR-8,plant@example.test,,large_commercial,1.2,yes
"""


async def _open(config: GatewayConfig) -> Store:
    return await open_store(config.storage_url)


@dataclass
class Gateway:
    """A running gateway and what a test needs to drive it."""

    base_url: str
    client: httpx.AsyncClient
    store: Store
    clock: ManualClock
    config: GatewayConfig
    operator_token: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def op(self) -> dict[str, str]:
        return self.auth(self.operator_token)

    def mails(self) -> list[Message]:
        path = self.config.mbox_path
        if not path.exists():
            return []
        box = mailbox.mbox(path)
        try:
            return list(box)
        finally:
            box.close()

    def mails_to(self, address: str) -> list[Message]:
        return [m for m in self.mails() if m["To"] == address]

    @staticmethod
    def body(message: Message) -> str:
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def link(self, message: Message, path: str) -> str:
        """The link starting with base_url + path in an email (the customer would click it)."""
        found = re.search(re.escape(self.base_url + path) + r"[A-Za-z0-9_\-]+", self.body(message))
        assert found, f"no {path} link in:\n{self.body(message)}"
        return found.group(0)

    async def load_premises(self, csv_text: str = PREMISES_CSV) -> dict[str, Any]:
        r = await self.client.post("/v1/premises/import", content=csv_text,
                                   headers={**self.op, "Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        summary: dict[str, Any] = r.json()
        return summary

    async def new_party(self, name: str, duns: str) -> tuple[int, str]:
        r = await self.client.post("/v1/parties", headers=self.op, json={
            "name": name, "duns": duns, "contact_email": f"api@{name.lower()}.test"})
        assert r.status_code == 201, r.text
        party_id = r.json()["id"]
        r = await self.client.post(f"/v1/parties/{party_id}/credentials", headers=self.op,
                                   json={"label": "test"})
        assert r.status_code == 201, r.text
        return party_id, r.json()["token"]

    async def invite(self, token: str, *, esi_ids: list[tuple[str, str]], email: str,
                     kind: str = "in_home_device_services", scopes: list[str] | None = None,
                     months: int = 12) -> httpx.Response:
        return await self.client.post("/v1/agreements", headers=self.auth(token), json={
            "kind": kind,
            "scopes": (["text", "price", "load_control"] if scopes is None else scopes)
            if kind == "in_home_device_services" else [],
            "premises": [{"esi_id": e, "meter_number": m} for e, m in esi_ids],
            "customer_email": email, "duration_months": months})

    async def consent(self, email: str, decision: str = "accept") -> httpx.Response:
        """Follow the newest consent link mailed to `email` and press the button."""
        link = self.link(self.mails_to(email)[-1], "/consent/")
        page = await self.client.get(link)
        assert page.status_code == 200, page.text
        return await self.client.post(link, data={"decision": decision})

    async def active_agreement(self, token: str, esi_id: str, meter: str, email: str, *,
                               kind: str = "in_home_device_services",
                               scopes: list[str] | None = None) -> int:
        r = await self.invite(token, esi_ids=[(esi_id, meter)], email=email, kind=kind,
                              scopes=scopes)
        assert r.status_code == 201, r.text
        accepted = await self.consent(email)
        assert accepted.status_code == 200, accepted.text
        agreement_id: int = r.json()["id"]
        return agreement_id

    async def run_timers(self) -> dict[str, int]:
        r = await self.client.post("/v1/lifecycle-runs", headers=self.op)
        assert r.status_code == 200, r.text
        result: dict[str, int] = r.json()
        return result


async def start_server(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                            lifespan="on", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def install_code(seed: int) -> str:
    """A valid install code (16 random-looking bytes + CRC), as a label prints it."""
    body = hashlib.blake2b(seed.to_bytes(8, "big"), digest_size=16).digest()
    return (body + expected_crc(body)).hex().upper()


LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]


def gateway_config(data_dir: Path, **sections: Any) -> GatewayConfig:
    # Every test gateway has a device key (link keys are stored encrypted), unless a test says otherwise.
    sections.setdefault("security", {"device_key_secret": Fernet.generate_key().decode()})
    # The tests' webhook receivers listen on loopback, which webhooks may not reach by default
    # (SSRF guard): allowed here explicitly; a test that passes its own list sees the default.
    sections["pipeline"] = {"webhook_allowed_networks": LOOPBACK_NETWORKS, **sections.get("pipeline", {})}
    data: dict[str, Any] = {"data_dir": str(data_dir), **sections}
    return parse_config(data, env={})


@contextlib.asynccontextmanager
async def running_gateway(data_dir: Path, storage_url: str | None = None, *, reuse: bool = False,
                          opener: Callable[[GatewayConfig], Awaitable[Store]] = _open,
                          **sections: Any) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port, with a manual clock and an operator token. `reuse`: on
    the data of a gateway that ran before (a restart)."""
    if storage_url is not None:
        sections = {**sections, "storage": {"url": storage_url}}
    config = gateway_config(data_dir, **sections)
    config.data_dir.mkdir(parents=True, exist_ok=reuse)
    store = await opener(config)
    clock = ManualClock()
    _cred, operator_token = await store.issue_credential(role=Role.OPERATOR, label="tests",
                                                         now=clock.now())
    app = create_app(config, store=store, clock=clock, run_timers=False)
    server, task, port = await start_server(app)
    base_url = f"http://127.0.0.1:{port}"
    config.server.public_url = base_url
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            yield Gateway(base_url, client, store, clock, config, operator_token)
    finally:
        await stop_server(server, task)
        await store.close()
