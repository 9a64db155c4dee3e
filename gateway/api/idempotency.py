"""`Idempotency-Key` on every POST under /v1, as a pure ASGI middleware (lean request path).

The first response to a key is stored with a hash of the request; a replay with the same request
gets the same status and body (and `Idempotent-Replayed: true`); the same key with a different
request is refused with 422 `idempotency_key_reused`. Keys are scoped per bearer token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import PROBLEM_JSON, problem_type
from gateway.clock import Clock
from gateway.store.store import Store, StoredResponse

MAX_KEY_LENGTH = 200


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, store: Callable[[], Store], clock: Clock) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        # In-process serialization of concurrent requests with one key: (lock, users).
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(
                "/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key_raw = headers.get(b"idempotency-key")
        if key_raw is None:
            await self.app(scope, receive, send)
            return
        key = key_raw.decode("latin-1")
        if not key or len(key) > MAX_KEY_LENGTH:
            await _send_problem(send, 400, "invalid_idempotency_key", "Invalid Idempotency-Key",
                                f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters, got "
                                f"{len(key)}")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        token_scope = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()
        digest = hashlib.sha256(
            scope["path"].encode() + b"?" + scope.get("query_string", b"") + b"\n" + body
        ).hexdigest()
        lock, users = self._locks.setdefault((token_scope, key), (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                await self._handle(scope, send, body, (token_scope, key, digest))
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop((token_scope, key), None)

    async def _handle(
        self, scope: Scope, send: Send, body: bytes, ident: tuple[str, str, str]
    ) -> None:
        token_scope, key, digest = ident
        store = self.store()
        stored = await store.get_idempotent(token_scope, key)
        if stored is not None:
            if stored.request_hash != digest:
                await _send_problem(send, 422, "idempotency_key_reused",
                                    "Idempotency-Key reused with a different request",
                                    f"the key {key!r} was first used with a different request "
                                    "body or path; use a new key for a new request")
                return
            await send({"type": "http.response.start", "status": stored.status_code,
                        "headers": [(b"content-type", stored.content_type.encode()),
                                    (b"content-length", str(len(stored.body)).encode()),
                                    (b"idempotent-replayed", b"true")]})
            await send({"type": "http.response.body", "body": stored.body})
            return

        sent_body = False

        async def replay_receive() -> Message:
            nonlocal sent_body
            if sent_body:
                return {"type": "http.disconnect"}
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, replay_receive, capture_send)
        status = captured["status"]
        # Server errors and rate limiting are not results: a retry with the key may succeed.
        if status >= 500 or status == 429:
            return
        content_type = next((v.decode() for k, v in captured["headers"]
                             if k.lower() == b"content-type"), "application/json")
        await store.put_idempotent(token_scope, key,
                                   StoredResponse(digest, status, content_type, captured["body"]),
                                   self.clock.now())


async def _send_problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body = json.dumps({"type": problem_type(code), "title": title, "status": status,
                       "detail": detail, "code": code}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
