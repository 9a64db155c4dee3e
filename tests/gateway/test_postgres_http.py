"""The API over real HTTP with its store on PostgreSQL: the consent lifecycle and the
authorization matrix, the same tests as on SQLite."""

from __future__ import annotations

import pytest

from tests.gateway import test_authorization_matrix, test_consent_lifecycle
from tests.gateway.conftest import Gateway


async def test_consent_lifecycle_on_postgresql(gateway_pg: Gateway) -> None:
    await test_consent_lifecycle.test_invite_email_page_accept_confirm_and_customer_terminates(
        gateway_pg)


async def test_timers_on_postgresql(gateway_pg: Gateway) -> None:
    await test_consent_lifecycle.test_reminders_renew_completion_and_45_day_visibility(gateway_pg)


# The matrix makes about a hundred calls per party in a second or two: what it tests is who is let
# in, so the per-party rate limit (20/s, burst 40 by default) is raised out of its way; a 429 here
# was a flaky failure whenever the calls came faster than 20/s.
@pytest.mark.gateway_config(rate_limit={"requests_per_second": 10_000, "burst": 10_000})
async def test_authorization_matrix_on_postgresql(gateway_pg: Gateway) -> None:
    await test_authorization_matrix.test_authorization_matrix(gateway_pg)
