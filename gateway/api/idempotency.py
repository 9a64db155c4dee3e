"""`Idempotency-Key` on POST: the key is reserved in the same transaction as the action it guards.

The authorization policy (gateway/api/policy.py) calls `run_idempotent` only after it has
authenticated the caller and allowed the operation, so a stored answer is replayed only to the same
credential, still valid, for the same operation and the same request (path, query and body).

- **Crash-safe.** The handler runs in a unit of work (gateway/store/unit_of_work.py): its writes and
  the stored answer commit together. Killed before the commit, nothing happened and the retry acts
  once; killed after it, the retry finds the answer and replays it.
- **Reserved first, on every instance.** A concurrent request with the same key waits — in this
  process on a lock, across gateway instances on one PostgreSQL on the key's advisory lock, which
  the unit of work takes before the handler runs (gateway/store/idempotency.py `reserve`) — and then
  replays the stored answer: the handler runs once, so effects outside the unit's transaction (a
  mail sent after the commit, a text written by the group committer) happen once too. If the first
  request failed (4xx, or it died), the waiting one runs as if it were first.
- **Sealed at rest.** The stored answer (a `201` may carry a new API token or a webhook secret) is
  encrypted with AES-GCM under a key derived (HKDF-SHA256) from the caller's bearer token and the
  Idempotency-Key, neither of which is stored; the key column holds a SHA-256 of the key, and the
  request is compared by an HMAC under the same derived key. Someone with the database (or its WAL)
  reads none of it.
- Only answers of actions that happened (2xx) are stored: a refused request (4xx) did nothing, and a
  retry with the same key is judged again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request, Response

from gateway.errors import FieldError, GatewayError, InvalidRequest
from gateway.store import idempotency as stored_answers
from gateway.store.errors import ConstraintViolation
from gateway.store.unit_of_work import UnitOfWorkEngine

MAX_KEY_LENGTH = 200
T = TypeVar("T")
_INFO = b"hangw idempotency-key v1"


class KeyReused(InvalidRequest):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


@dataclass(frozen=True)
class Guard:
    """One keyed request: where its answer is stored and the keys that seal it."""

    scope: str  # the caller's credential
    key_hash: str
    operation: str  # "POST /v1/…", the route's path template
    request_mac: str
    _aead_key: bytes

    def seal(self, status_code: int, content_type: str, body: bytes) -> stored_answers.SealedAnswer:
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(self._aead_key).encrypt(nonce, body, self._aad())
        return stored_answers.SealedAnswer(self.operation, self.request_mac, status_code, content_type, sealed)

    def open(self, answer: stored_answers.SealedAnswer) -> bytes:
        nonce, ciphertext = answer.sealed_body[:12], answer.sealed_body[12:]
        return AESGCM(self._aead_key).decrypt(nonce, ciphertext, self._aad())

    def _aad(self) -> bytes:
        return f"{self.scope}\n{self.key_hash}\n{self.operation}".encode()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise GatewayError(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters, got {len(key)}",
                             code="invalid_idempotency_key", errors=[FieldError(
                                 "Idempotency-Key", "invalid_idempotency_key",
                                 f"1..{MAX_KEY_LENGTH} characters", key[:MAX_KEY_LENGTH + 1])])


def make_guard(*, token: str, key: str, credential_id: int | None, operation: str, path: str, query: bytes,
               body: bytes, scope: str | None = None) -> Guard:
    """`token`: the caller's secret that seals the answer (its bearer token; the MQTT API passes a
    secret of its own). `scope`: whose keys these are (default: the credential's)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_INFO).derive(
        token.encode() + b"\0" + key.encode())
    aead_key, mac_key = derived[:32], derived[32:]
    mac = hmac.new(mac_key, path.encode() + b"?" + query + b"\n" + body, hashlib.sha256).hexdigest()
    return Guard(scope or f"credential:{credential_id}", hashlib.sha256(key.encode()).hexdigest(), operation, mac,
                 aead_key)


# In-process waiting of concurrent requests with one key: (lock, users), so that they do not each
# hold a pooled connection while they wait. Across instances the key's advisory lock does the same
# (`reserve`); the key's primary key stays the last guard (a unique violation replays the answer).
_locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}


@dataclass(frozen=True)
class Answer:
    """What a channel answered: stored as such, replayed as such."""

    status_code: int
    content_type: str
    body: bytes
    replayed: bool = False


async def run_keyed(guard: Guard, engine: UnitOfWorkEngine, action: Callable[[], Awaitable[T]], *,
                    answer_of: Callable[[T], Answer], replay: Callable[[Answer], T],
                    now: Callable[[], datetime]) -> T:
    """The stored answer to `guard`'s key (through `replay`), or `action`'s, committed with its
    action: the channel-neutral core (HTTP: `run_idempotent`; MQTT: gateway/api/submission.py)."""
    ident = (guard.scope, guard.key_hash)
    lock, users = _locks.setdefault(ident, (asyncio.Lock(), [0]))
    users[0] += 1
    try:
        async with lock:
            found = await stored_answers.find(engine, guard.scope, guard.key_hash)
            if found is not None:
                return replay(_replay(guard, found))
            try:
                async with engine.unit_of_work() as conn:
                    found = await stored_answers.reserve(conn, guard.scope, guard.key_hash)
                    if found is not None:  # another instance acted while this one waited
                        return replay(_replay(guard, found))
                    result = await action()
                    answer = answer_of(result)
                    if 200 <= answer.status_code < 300:
                        sealed = guard.seal(answer.status_code, answer.content_type, answer.body)
                        await stored_answers.insert(conn, guard.scope, guard.key_hash, sealed, now())
            except ConstraintViolation:
                # Another instance committed this key first (our action rolled back with it).
                found = await stored_answers.find(engine, guard.scope, guard.key_hash)
                if found is None:
                    raise
                return replay(_replay(guard, found))
            return result
    finally:
        users[0] -= 1
        if users[0] == 0:
            _locks.pop(ident, None)


async def run_idempotent(request: Request, guard: Guard, engine: UnitOfWorkEngine,
                         handler: Callable[[Request], Awaitable[Response]],
                         now: Callable[[], datetime]) -> Response:
    """The stored answer to `guard`'s key, or the handler's answer, committed with its action."""

    def answer_of(response: Response) -> Answer:
        return Answer(response.status_code, response.headers.get("content-type", "application/json"),
                      bytes(response.body))

    def replay(answer: Answer) -> Response:
        return Response(content=answer.body, status_code=answer.status_code, media_type=answer.content_type,
                        headers={"Idempotent-Replayed": "true"})

    return await run_keyed(guard, engine, lambda: handler(request), answer_of=answer_of, replay=replay, now=now)


def _replay(guard: Guard, found: stored_answers.SealedAnswer) -> Answer:
    if found.operation != guard.operation or not hmac.compare_digest(found.request_mac, guard.request_mac):
        raise KeyReused("the key was first used with a different request (operation, path or body); use a new "
                        "key for a new request", errors=[FieldError(
                            "Idempotency-Key", "idempotency_key_reused", "first used with another request", None)])
    return Answer(found.status_code, found.content_type, guard.open(found), replayed=True)
