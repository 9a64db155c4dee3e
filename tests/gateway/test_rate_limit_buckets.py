"""The shared (database) bucket answers as the in-process one: the same RateLimit-* headers, a 429
with Retry-After once the burst is spent, and a request let in again after Retry-After — on
PostgreSQL (its default there) and on SQLite when `[rate_limit] shared = true` is asked for."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import ConfigError, parse_config
from tests.gateway.conftest import Gateway

LIMIT = {"requests_per_second": 0.5, "burst": 3}


async def _spend_the_burst(gateway: Gateway) -> None:
    _pid, token = await gateway.new_party("Acme", "123456789")
    me = gateway.auth(token)
    answers = [await gateway.client.get("/v1/me", headers=me) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429], [r.text for r in answers]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r.headers["RateLimit-Limit"] for r in answers} == {"3"}
    # Full again after three intervals of 2 s (less what passed meanwhile).
    assert [int(r.headers["RateLimit-Reset"]) for r in answers[:3]] == [2, 4, 6]
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    await asyncio.sleep(retry_after + 0.1)
    again = await gateway.client.get("/v1/me", headers=me)
    assert again.status_code == 200 and again.headers["RateLimit-Remaining"] == "0"


@pytest.mark.gateway_config(rate_limit={**LIMIT, "shared": True})
async def test_shared_bucket_on_sqlite(gateway: Gateway) -> None:
    await _spend_the_burst(gateway)


@pytest.mark.gateway_config(rate_limit=LIMIT)
async def test_shared_bucket_is_the_default_on_postgresql(gateway_pg: Gateway) -> None:
    await _spend_the_burst(gateway_pg)


def test_a_bad_shared_setting_names_the_key_and_value() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"rate_limit": {"shared": "sometimes"}}, env={})
    (problem,) = caught.value.problems
    assert problem.key == "rate_limit.shared" and problem.value == "sometimes"
