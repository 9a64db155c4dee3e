"""Mosquitto's dynamic-security plugin, administered over its control topic.

Commands are JSON published to `$CONTROL/dynamic-security/v1`; the plugin answers each on
`$CONTROL/dynamic-security/v1/response` with the command's name, its `correlationData` and an
`error` when it failed (mosquitto_ctrl_dynsec(1), https://mosquitto.org/documentation/dynamic-security/).
The client that sends them needs the dynsec admin role (`mosquitto_ctrl dynsec init` creates one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from gateway.mqtt_api.client import BrokerClient, BrokerError

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"


class DynsecError(Exception):
    """A dynsec command the plugin refused: the command and the plugin's error text."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"dynamic-security {command}: {error}")
        self.command = command
        self.error = error


class Dynsec:
    """Send dynsec commands through a connected client (which this object subscribes to the
    response topic and reads answers from: give it a client of its own)."""

    def __init__(self, client: BrokerClient, timeout_s: float = 5.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        code = await self._client.subscribe(RESPONSE_TOPIC, qos=1)
        if code >= 0x80:
            raise BrokerError(self._client.where, f"may not subscribe to {RESPONSE_TOPIC} (reason {code:#x}): "
                              "the client needs the dynsec admin role")
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        while True:
            message = await self._client.messages.get()
            if message.topic != RESPONSE_TOPIC:
                continue
            try:
                responses = json.loads(message.payload).get("responses", [])
            except (ValueError, AttributeError):
                continue
            for response in responses:
                fut = self._waiting.pop(str(response.get("correlationData")), None)
                if fut is not None and not fut.done():
                    fut.set_result(response)

    async def run(self, command: str, **fields: Any) -> dict[str, Any]:
        """One command; its response (DynsecError if the plugin answered with an error)."""
        correlation = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = fut
        body = {"commands": [{"command": command, "correlationData": correlation, **fields}]}
        try:
            await self._client.publish(CONTROL_TOPIC, json.dumps(body).encode(), qos=1)
            async with asyncio.timeout(self._timeout_s):
                response = await fut
        except TimeoutError:
            raise DynsecError(command, f"no answer within {self._timeout_s} s (is the dynamic-security plugin "
                              "loaded, and does this client hold its admin role?)") from None
        finally:
            self._waiting.pop(correlation, None)
        if response.get("error"):
            raise DynsecError(command, str(response["error"]))
        return response

    # -- what the MQTT API does with it -----------------------------------------------------------
    async def ensure_role(self, rolename: str, acls: list[dict[str, Any]], textname: str) -> None:
        """Create the role with exactly these ACLs, or bring an existing one to them."""
        try:
            await self.run("createRole", rolename=rolename, textname=textname, acls=acls)
            return
        except DynsecError as exc:
            if "already exists" not in exc.error.lower():
                raise
        want = {(a["acltype"], a["topic"], a["allow"]) for a in acls}
        have = await self._role_acls(rolename)
        changes = [{"command": "removeRoleACL", "rolename": rolename, "acltype": acltype, "topic": topic}
                   for acltype, topic, _ in have - want]
        changes += [{"command": "addRoleACL", "rolename": rolename, **a} for a in acls
                    if (a["acltype"], a["topic"], a["allow"]) not in have]
        if changes:
            await self._run_may_kick(changes)
            if await self._role_acls(rolename) != want:
                raise DynsecError("addRoleACL", f"role {rolename} did not take its ACLs")

    async def _role_acls(self, rolename: str) -> set[tuple[str, str, bool]]:
        role = (await self.run("getRole", rolename=rolename)).get("data", {}).get("role", {})
        return {(a["acltype"], a["topic"], bool(a.get("allow"))) for a in role.get("acls", [])}

    async def _run_may_kick(self, commands: list[dict[str, Any]]) -> None:
        """Commands that may disconnect this very client: Mosquitto disconnects every client whose
        ACL they change (a role it holds), and their answers are lost with the connection. Sent in
        one message; done when answered or when the client has reconnected (the caller checks)."""
        connects = self._client.connects
        correlations = [uuid.uuid4().hex for _ in commands]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._waiting.update(zip(correlations, futures, strict=True))
        body = {"commands": [{**c, "correlationData": k} for c, k in zip(commands, correlations, strict=True)]}
        try:
            await self._client.publish(CONTROL_TOPIC, json.dumps(body).encode(), qos=1)
            async with asyncio.timeout(self._timeout_s * 3):
                while not all(f.done() for f in futures) and self._client.connects == connects:
                    await asyncio.sleep(0.02)
            if self._client.connects != connects:
                await self._client.resubscribed()
        finally:
            for k in correlations:
                self._waiting.pop(k, None)

    async def client_roles(self, username: str) -> list[str]:
        found = (await self.run("getClient", username=username)).get("data", {}).get("client", {})
        return [r["rolename"] for r in found.get("roles", [])]

    async def ensure_own_role(self, username: str, rolename: str) -> None:
        """Give this client itself (`username`) a role (Mosquitto disconnects it meanwhile)."""
        if rolename in await self.client_roles(username):
            return
        await self._run_may_kick([{"command": "addClientRole", "username": username, "rolename": rolename}])
        if rolename not in await self.client_roles(username):
            raise DynsecError("addClientRole", f"{username} still lacks role {rolename}")

    async def create_client(self, username: str, password: str, rolename: str, textname: str) -> None:
        await self.run("createClient", username=username, password=password, textname=textname,
                       roles=[{"rolename": rolename}])

    async def delete_client(self, username: str) -> bool:
        """Delete a client (Mosquitto disconnects its connections); False if it did not exist."""
        try:
            await self.run("deleteClient", username=username)
        except DynsecError as exc:
            if "not found" in exc.error.lower():
                return False
            raise
        return True
