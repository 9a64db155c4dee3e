"""API fuzzing with schemathesis against a running gateway (real HTTP on loopback, SQLite): every
operation of /openapi.json, positive and negative data, all of schemathesis' response checks, as
operator, as a third party with an active agreement, and as an assigned field technician; then
the stateful mode, which follows the document's OpenAPI links from creates to reads and deletes.

Bounded for a 2-core machine (few examples per operation, few stateful steps): the point is
that every operation keeps its contract, not an exhaustive search. The gateway runs in its own
thread and event loop, because schemathesis' calls are synchronous.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from gateway.domain.model import PartyStatus, Role
from tests.gateway.conftest import ONCOR, ONCOR_2, TNMP, Gateway, running_gateway

# schemathesis' regex strategies draw from `random` inside hypothesis (its concern, not ours).
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

ROLES = ("operator", "third_party", "technician")
EXAMPLES = 8  # per operation, per role and mode
STATEFUL_STEPS = 15
STATEFUL_RUNS = 10


@dataclass
class Served:
    """The running gateway. Each test gets fresh tokens (`headers`): the fuzzer revokes
    credentials (DELETE /v1/credentials/{id}), its own included."""

    base_url: str
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    party_id: int
    technician_id: int

    def headers(self, role: str) -> dict[str, str]:
        future = asyncio.run_coroutine_threadsafe(self._issue(role), self.loop)
        return {"Authorization": f"Bearer {future.result(10)}"}

    async def _issue(self, role: str) -> str:
        who = {"operator": {"role": Role.OPERATOR},
               "third_party": {"role": Role.THIRD_PARTY, "party_id": self.party_id},
               "technician": {"role": Role.FIELD_TECHNICIAN, "technician_id": self.technician_id}}[role]
        if role == "third_party":  # the operator's fuzzing may have suspended the party (PATCH status)
            await self.gateway.store.set_party_status(self.party_id, PartyStatus.ACTIVE)
        _cred, token = await self.gateway.store.issue_credential(label="fuzz", now=self.gateway.clock.now(), **who)
        return token


async def _prepare(gw: Gateway) -> Served:
    """Premises, a third party with active agreements and a technician assigned to a premise."""
    await gw.load_premises()
    party, token = await gw.new_party("Acme", "123456789")
    await gw.active_agreement(token, ONCOR, "MTR-1", "alice@example.test")
    await gw.active_agreement(token, TNMP, "MTR-7", "frank@example.test")
    r = await gw.client.post("/v1/technicians", headers=gw.op, json={"name": "Tess", "email": "t@ex.test"})
    tech = r.json()["id"]
    await gw.client.post(f"/v1/technicians/{tech}/assignments", headers=gw.op, json={"esi_id": ONCOR_2})
    return Served(gw.base_url, gw, asyncio.get_running_loop(), party, tech)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ready = threading.Event()
    box: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        try:
            # No rate limit in the way of the fuzzer (rate limiting has its own tests).
            async with running_gateway(tmp_path_factory.mktemp("fuzz") / "data",
                                       rate_limit={"requests_per_second": 100_000, "burst": 100_000}) as gw:
                box["served"] = await _prepare(gw)
                box["stop"] = asyncio.Event()
                ready.set()
                await box["stop"].wait()
        except Exception as exc:  # handed to the test thread, which raises it
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="gateway")
    thread.start()
    assert ready.wait(60), "the gateway did not come up"
    if "error" in box:
        raise box["error"]
    try:
        yield box["served"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        loop.close()


CONFIG = """
[generation]
max-examples = {examples}
[phases.stateful.inference]
algorithms = []  # the document's own links only (inferred ones put nulls into paths)
# Half of the path ids and ESI IDs are ones that exist (the rest random), so that operations
# get past "not found" and creates happen that links lead on from.
[dictionaries.premises]
values = {premises}
[dictionaries.parties]
values = [{party}]
[dictionaries.technicians]
values = [{technician}]
[parameters]
"path.esi_id" = {{dictionary = "premises", probability = 0.5}}
"path.party_id" = {{dictionary = "parties", probability = 0.5}}
"path.technician_id" = {{dictionary = "technicians", probability = 0.5}}
[checks.positive_data_acceptance]
# A 422 on schema-valid data is judged by `form_refusals` below: only refusals that depend on
# stored state or on rules a JSON schema cannot state (a CRC, a meter number on record) pass.
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""

# Field codes of refusals that a JSON schema cannot express: they depend on what is stored
# (premises, agreements, devices), on the clock, or on arithmetic (CRCs, SE frame sizes).
SEMANTIC_CODES = {
    "esi_id_unknown_tdsp", "unknown_esi_id", "meter_number_mismatch", "customer_email_mismatch",
    "duration_not_allowed", "duplicate_active_agreement", "meter_not_han_ready", "premise_not_active",
    "install_code_crc_mismatch", "install_code_other_device", "start_in_past", "duration_over_limit",
    "text_too_long", "price_out_of_range", "tier_over_number_of_tiers", "set_point_and_offset",
    "unknown_device_class_bits", "out_of_range", "invalid_cursor", "no_consent",
    # uniqueness by one property of list items (JSON schema's uniqueItems compares whole items)
    "duplicate_esi_id",
    # the SE UTCTime range of date-times (2000..2136): JSON schema bounds no date-time
    "time_out_of_range",
    # a length in UTF-8 bytes (rate_label): JSON schema counts characters
    "too_long",
    # usage periods: one date-time after another, on 15-minute / local-midnight boundaries, in the
    # past and at most 13 months back (the clock and America/Chicago)
    "period_empty", "period_not_past", "period_too_old", "not_on_interval_boundary", "not_on_day_boundary",
    "not_on_month_boundary",
    # the request list's created_after before created_before (one query parameter against another)
    "empty_interval",
    # a usage report names its premises by agreement_ids or by esi_ids, exactly one of them
    "one_of_required",
}


def form_refusals(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schema-valid input refused for its form (a pydantic code such as `string_too_short`, or a
    gateway code not in SEMANTIC_CODES): the document is looser than the validation."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    codes = {e["code"] for e in body.get("errors") or []} or {body["code"]}
    unexplained = codes - SEMANTIC_CODES
    assert not unexplained, f"schema-valid input refused for its form: {unexplained}: {response.text[:300]}"
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, positive_data_acceptance,
          missing_required_header, unsupported_method, allow_header_conformance, ignored_auth]


def _schema(served: Served) -> Any:
    config = SchemathesisConfig.from_str(CONFIG.format(
        examples=EXAMPLES, premises=json.dumps([ONCOR, ONCOR_2, TNMP]), party=served.party_id,
        technician=served.technician_id))
    return schemathesis.openapi.from_url(f"{served.base_url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    return _schema(served)


SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure's first example is reported
    suppress_health_check=list(HealthCheck))


def _failure(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        curl = [line.strip() for line in str(exc).splitlines() if line.strip().startswith("curl ")]
        return "; ".join(_failure(e) for e in exc.exceptions) + "".join(f" [{c[:600]}]" for c in curl[:1])
    title = getattr(exc, "title", type(exc).__name__)
    return f"{title}: {' '.join(str(getattr(exc, 'message', exc)).split())[:400]}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_keeps_its_contract(api_schema: Any, served: Served, role: str,
                                            mode: GenerationMode) -> None:
    """Every operation of the document, with all of schemathesis' response checks (for negative
    data: it is refused with a 4xx; positive data is not refused as invalid)."""
    headers = served.headers(role)
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @SETTINGS
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS, additional_checks=[form_refusals])

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.path  # nothing to get wrong (no inputs)
        except (Exception, BaseExceptionGroup) as exc:  # each operation's first failure, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {_failure(exc)}")
    assert operations >= 35
    assert failures == [], "\n".join(failures)


STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]


@pytest.mark.parametrize("role", ROLES)
def test_stateful_links(api_schema: Any, served: Served, role: str) -> None:
    """Sequences of calls that follow the document's links (a created id into the next call),
    with every check, including the stateful ones (a deleted resource stays gone; a created one
    is there)."""
    headers = served.headers(role)
    followed: list[str] = []
    calls: list[str] = []

    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def step(self, input: Any) -> Any:
            calls.append(input.case.operation.label)
            if input.transition is not None and input.is_applied:
                followed.append(f"{input.transition.id}")
            return super().step(input)

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=STATEFUL_CHECKS, additional_checks=[form_refusals],
                                   transport_kwargs=kwargs or None, recorder=getattr(self, "recorder", None))

    Machine.run(settings=hypothesis.settings(
        max_examples=STATEFUL_RUNS, stateful_step_count=STATEFUL_STEPS, deadline=None, derandomize=True,
        database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    assert len(calls) >= STATEFUL_RUNS * 2, calls
    # A technician creates nothing a link leads on from (a device needs an install code whose
    # CRC a generator does not hit); operators and third parties do.
    assert followed or role == "technician", f"{role}: no link was followed in {calls}"


def test_the_document_has_links(api_schema: Any) -> None:
    raw = api_schema.raw_schema
    links = [(p, m, s) for p, item in raw["paths"].items() for m, op in item.items()
             for s, resp in op["responses"].items() if resp.get("links")]
    assert len(links) >= 6, links

