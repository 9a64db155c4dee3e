"""A HAN request from a channel other than HTTP (the MQTT API): the REST operation
`POST /v1/han-requests` without HTTP.

The same steps in the same order as `PolicyRoute` runs them for REST (gateway/api/policy.py): the
operation's policy and the party's rate limit (`admit`), the Idempotency-Key guard
(`run_keyed`, the answer committed with the request it accepted), validation of the body against the
same model (`HanRequestBody`), and the same service call (`accept_request`). The answer is what
REST answers: the 202 summary, or the problem document with its status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.api.deps import Services
from gateway.api.idempotency import Answer, check_key, make_guard, run_keyed
from gateway.api.policy import admit
from gateway.api.problems import (
    INVALID_FIELDS,
    PROBLEM_JSON,
    RateLimited,
    error_body,
    invalid_json_body,
    problem_body,
    validation_errors,
)
from gateway.api.routes_requests import accept_request
from gateway.domain.records import Principal
from gateway.errors import GatewayError
from gateway.pipeline.dispatcher import Dispatcher
from gateway.pipeline.requests import HanRequestBody
from gateway.store.unit_of_work import unit_engine

OPERATION = "POST /v1/han-requests"
_BODY: TypeAdapter[Any] = TypeAdapter(HanRequestBody)


@dataclass(frozen=True)
class SubmissionReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # RateLimit-*, Retry-After, Idempotent-Replayed

    @property
    def accepted(self) -> bool:
        return self.status == 202


class _Refused(Exception):
    """A refusal inside the guarded action: rolls the unit of work back, as an HTTP error does."""

    def __init__(self, reply: SubmissionReply) -> None:
        super().__init__(reply.status)
        self.reply = reply


async def submit_han_request(svc: Services, who: Principal, raw: bytes, *, instance: str,
                             idempotency_key: str | None, key_secret: str, scope: str,
                             dispatcher: Dispatcher | None) -> SubmissionReply:
    """`raw`: the JSON body as received. `instance`: where it came from (the problem's `instance`).
    `key_secret` and `scope`: what seals and separates this caller's stored answers (REST uses the
    bearer token and the credential)."""
    headers: dict[str, str] = {}
    try:
        headers = await admit(svc, who, OPERATION)

        async def action() -> SubmissionReply:
            try:
                body = _BODY.validate_python(json.loads(raw))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _Refused(SubmissionReply(422, invalid_json_body(str(exc), instance))) from None
            except ValidationError as exc:
                errors = validation_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()],
                                           _loads_or_none(raw))
                raise _Refused(SubmissionReply(422, problem_body(*INVALID_FIELDS, f"{len(errors)} invalid field(s)",
                                                       instance=instance, errors=errors))) from None
            accepted = await accept_request(svc, who, body, dispatcher)
            return SubmissionReply(202, accepted.model_dump(mode="json"))

        if idempotency_key is None:
            reply = await action()
        else:
            check_key(idempotency_key)
            guard = make_guard(token=key_secret, key=idempotency_key, credential_id=who.credential_id,
                               operation=OPERATION, path=instance, query=b"", body=raw, scope=scope)
            reply = await run_keyed(guard, unit_engine(svc.store.engine), action, answer_of=_answer_of, replay=_replay,
                                    now=svc.clock.now)
    except _Refused as refused:
        return SubmissionReply(refused.reply.status, refused.reply.body, headers)
    except RateLimited as exc:
        return SubmissionReply(exc.status, error_body(exc, instance),
                               {**exc.headers, "Retry-After": str(exc.retry_after)})
    except GatewayError as exc:
        extra = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        return SubmissionReply(exc.status, error_body(exc, instance), {**headers, **extra})
    return SubmissionReply(reply.status, reply.body, {**headers, **reply.headers})


def content_type(reply: SubmissionReply) -> str:
    return "application/json" if reply.accepted else PROBLEM_JSON


def _answer_of(reply: SubmissionReply) -> Answer:
    return Answer(reply.status, content_type(reply), json.dumps(reply.body).encode())


def _replay(answer: Answer) -> SubmissionReply:
    return SubmissionReply(answer.status_code, json.loads(answer.body), {"Idempotent-Replayed": "true"})


def _loads_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
