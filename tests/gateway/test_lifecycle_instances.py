"""Three gateway instances on one PostgreSQL database run the agreement lifecycle at the same
moments: each reminder, each end-of-term mail and each invitation expiry happens once.

Each instance is a whole app with its own store (engine, pool), HTTP server and clock (moved
together, as real clocks are); the operator triggers `POST /v1/lifecycle-runs` on all three at
once, twice per step. What is counted is what the customers received: the three instances'
outboxes (mbox files) together."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

from tests.gateway.conftest import (
    CENTERPOINT,
    ONCOR,
    ONCOR_EAST,
    TNMP,
    Gateway,
    running_gateway,
)

# (ESI ID, meter, the customer on record): one agreement each.
CUSTOMERS = [(ONCOR, "MTR-1", "alice@example.test"), (ONCOR_EAST, "MTR-3", "bob@example.test"),
             (CENTERPOINT, "MTR-4", "carol@example.test")]


async def _all_run(gws: list[Gateway]) -> dict[str, int]:
    """Every instance runs its timers at once; the report's counts summed over the instances."""
    total: dict[str, int] = {}
    for report in await asyncio.gather(*(gw.run_timers() for gw in gws)):
        for key, value in report.items():
            total[key] = total.get(key, 0) + value
    return total


def _mails(gws: list[Gateway], subject_part: str) -> list[str]:
    return [m["To"] for gw in gws for m in gw.mails() if subject_part in m["Subject"]]


def _advance(gws: list[Gateway], to: datetime) -> None:
    delta = to - gws[0].clock.now()
    for gw in gws:
        gw.clock.advance(delta)


async def test_three_instances_send_each_reminder_and_end_once(tmp_path: Path, migrated_pg_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        gws = [await stack.enter_async_context(running_gateway(tmp_path / f"gw{i}", migrated_pg_url)) for i in range(3)]
        first = gws[0]
        await first.load_premises()
        _pid, token = await first.new_party("Acme", "123456789")
        agreements = [await first.active_agreement(token, esi, meter, email) for esi, meter, email in CUSTOMERS]
        # One more invitation nobody answers: it expires once.
        unanswered = await first.invite(token, esi_ids=[(TNMP, "MTR-7")], email="frank@example.test")
        assert unanswered.status_code == 201, unanswered.text
        ends = datetime.fromisoformat((await first.client.get(
            f"/v1/agreements/{agreements[0]}", headers=first.auth(token))).json()["ends_at"])

        # 30 days before the end (plus a minute): the first reminder of every agreement is due.
        _advance(gws, ends - timedelta(days=30) + timedelta(minutes=1))
        reports = [await _all_run(gws), await _all_run(gws)]
        assert sum(r["reminded"] for r in reports) == len(agreements), reports
        assert sum(r["expired"] for r in reports) == 1, reports  # 30 days: the invitation's lifetime
        assert sorted(_mails(gws, "ends on")) == sorted(email for _e, _m, email in CUSTOMERS)

        # 7 days before: the second reminder, once each.
        _advance(gws, ends - timedelta(days=7) + timedelta(minutes=1))
        reports = [await _all_run(gws), await _all_run(gws)]
        assert sum(r["reminded"] for r in reports) == len(agreements), reports
        assert len(_mails(gws, "ends on")) == 2 * len(agreements)

        # The term is over: each agreement completes once, each customer is told once.
        _advance(gws, ends + timedelta(days=1))
        reports = [await _all_run(gws), await _all_run(gws)]
        assert sum(r["completed"] for r in reports) == len(agreements), reports
        assert sorted(_mails(gws, "has ended")) == sorted(email for _e, _m, email in CUSTOMERS)
        for agreement_id in agreements:
            body = (await first.client.get(f"/v1/agreements/{agreement_id}", headers=first.op)).json()
            assert body["state"] == "completed", body
        assert all(r["mails_failed"] == 0 for r in reports)
