"""The API over real HTTP with its store on PostgreSQL: the consent lifecycle and the
authorization matrix, the same tests as on SQLite."""

from __future__ import annotations

from tests.gateway import test_authorization_matrix, test_consent_lifecycle
from tests.gateway.conftest import Gateway


async def test_consent_lifecycle_on_postgresql(gateway_pg: Gateway) -> None:
    await test_consent_lifecycle.test_invite_email_page_accept_confirm_and_customer_terminates(
        gateway_pg)


async def test_timers_on_postgresql(gateway_pg: Gateway) -> None:
    await test_consent_lifecycle.test_reminders_renew_completion_and_45_day_visibility(gateway_pg)


async def test_authorization_matrix_on_postgresql(gateway_pg: Gateway) -> None:
    await test_authorization_matrix.test_authorization_matrix(gateway_pg)
