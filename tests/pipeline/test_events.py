"""Events for everything (issue 15), from the outside: a real gateway over HTTP with the simulated
route and field, real webhook receivers on loopback ports.

- Each example of the event catalogue in docs/third-party-api.md is parsed and compared with a
  real event of its type, produced by driving the app (agreement lifecycle by consent links and
  the lifecycle timer, provisioning, a request's deliveries, a dead letter): same fields, same
  JSON types. The webhook bodies are the feed's, signed, with `webhook-id` `evt_<id>`, in order
  per subject.
- A second party sees none of the first party's events or requests (feed, webhooks, list), on
  SQLite and PostgreSQL; a party without an event channel gets no delivery events (cost rule).
- While one event is retried, later events of its subject wait and other subjects' go on.
- `GET /v1/han-requests` filters and pages; bad filters are typed 422s naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from gateway.pipeline.webhooks import verify
from tests.gateway.conftest import db_url, install_code, pg_url, start_server, stop_server
from tests.pipeline.conftest import CUSTOMER, Stack, running_stack

__all__ = ["db_url", "pg_url"]  # the back-end fixtures

DOCS = Path(__file__).parents[2] / "docs" / "third-party-api.md"
USAGE_EVENTS = frozenset({"meter_read.completed", "meter_read.failed", "usage.available"})
REPORT_EVENTS = frozenset({"usage_report.completed"})  # checked in tests/pipeline/test_usage_reports.py


class Receiver:
    """A webhook receiver on a real port: keeps every attempt (headers, raw body) and answers 500
    to the bodies `refuse` says no to."""

    def __init__(self) -> None:
        self.attempts: list[tuple[dict[str, str], str]] = []
        self.accepted: list[dict[str, Any]] = []
        self.refuse: Any = lambda event: False
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            raw = (await request.body()).decode()
            self.attempts.append((dict(request.headers), raw))
            event = json.loads(raw)
            if self.refuse(event):
                return Response(status_code=500)
            self.accepted.append(event)
            return Response(status_code=204)

    def ids(self) -> set[int]:
        return {e["id"] for e in self.accepted}


class Receivers:
    def __init__(self) -> None:
        self.running: list[tuple[Any, Any]] = []

    async def start(self, receiver: Receiver) -> str:
        server, task, port = await start_server(receiver.app)
        self.running.append((server, task))
        return f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        for server, task in self.running:
            await stop_server(server, task)


async def _webhook(s: Stack, token: str, url: str) -> tuple[int, str]:
    r = await s.gw.client.post("/v1/webhooks", headers=s.gw.auth(token), json={"url": url})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["secret"]


async def _feed(client: httpx.AsyncClient, headers: dict[str, str], limit: int = 500) -> list[dict[str, Any]]:
    """Every event of the caller, page by page."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await client.get("/v1/events", headers=headers, params={"after": after, "limit": limit})
        assert r.status_code == 200, r.text
        page = r.json()
        if not page["items"]:
            assert page["next_after"] == after
            return out
        out.extend(page["items"])
        after = page["next_after"]
        assert after == page["items"][-1]["id"]


def _catalogue() -> dict[str, dict[str, Any]]:
    """type -> the example body under its `#### \\`type\\`` heading in the docs."""
    text = DOCS.read_text()
    section = text.split("### Event catalogue", 1)[1].split("### Catching up", 1)[0]
    found = {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r"^#### `([a-z_.]+)`\n(?:(?!^#### ).)*?```json\n(.*?)\n```", section, re.S | re.M)}
    assert len(found) == section.count("\n#### "), "a catalogue entry without a JSON example"
    return found


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}[type(value)]


def _shape_differences(example: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """Fields missing on either side, and fields whose JSON types differ (null matches anything:
    a field that may be null)."""
    out = [f"only in the docs: {k}" for k in example.keys() - real.keys()]
    out += [f"only in the real event: {k}" for k in real.keys() - example.keys()]
    for key in example.keys() & real.keys():
        a, b = example[key], real[key]
        if a is None or b is None:
            continue
        if _json_type(a) != _json_type(b):
            out.append(f"{key}: docs {_json_type(a)}, real {_json_type(b)}")
        elif isinstance(a, list) and a and b and _json_type(a[0]) != _json_type(b[0]):
            out.append(f"{key}[]: docs {_json_type(a[0])}, real {_json_type(b[0])}")
    return out


def _in_order_per_subject(arrivals: list[dict[str, Any]], subjects: dict[int, str]) -> None:
    """First arrivals of each subject's events have increasing ids."""
    seen: set[int] = set()
    last: dict[str, int] = {}
    for event in arrivals:
        if event["id"] in seen:
            continue  # a repeat (at least once) is allowed
        seen.add(event["id"])
        subject = subjects[event["id"]]
        assert event["id"] > last.get(subject, 0), f"{subject}: {event['id']} after {last[subject]}"
        last[subject] = event["id"]


async def test_every_catalogue_example_is_a_real_event(tmp_path: Path) -> None:
    examples = _catalogue()
    good, bad = Receiver(), Receiver()
    bad.refuse = lambda event: True
    receivers = Receivers()
    try:
        good_url, bad_url = await receivers.start(good), await receivers.start(bad)
        # CenterPoint premises have no route here: a device provisioned there waits for one (the
        # simulated route does not provision), its request recorded as device.provisioning.
        async with running_stack(tmp_path / "d", no_route_prefix="1008901", pipeline={"webhook_max_attempts": 1}) as s:
            gw = s.gw
            _p, token = await gw.new_party("Acme", "123456789")
            me = gw.auth(token)
            good_id, secret = await _webhook(s, token, good_url)
            (esi0, _m0), (esi1, meter1) = [(p.esi_id, p.meter_number) for p in s.premises[:2]]
            away, away_meter = next((p.esi_id, p.meter_number) for p in s.premises if p.esi_id.startswith("1008901"))

            services = await s.customer(token, [esi0])  # agreement.invited, agreement.accepted
            r = await gw.invite(token, esi_ids=[(away, away_meter)], email=CUSTOMER, kind="in_home_device")
            devices_agreement = r.json()["id"]
            assert (await gw.consent(CUSTOMER)).status_code == 200
            r = await gw.client.post(f"/v1/premises/{away}/devices", headers=me, json={
                "eui64": "001BC50000000099", "device_type": "in_home_display", "install_code": install_code(1)})
            assert r.status_code == 201, r.text  # device.provisioning

            rid = (await s.request(token, {"kind": "text", "esi_ids": [esi0], "text": "hello",
                                           "confirmation_required": True})).json()["id"]

            async def answered() -> bool:
                return any(e["type"] == "delivery.device_state" and e["request_id"] == rid for e in good.accepted)
            await s.eventually(answered, advance=5)  # delivery.state, delivery.device_state

            bad_id, _ = await _webhook(s, token, bad_url)  # every event from here dies there
            assert (await gw.invite(token, esi_ids=[(esi1, meter1)], email=CUSTOMER)).status_code == 201
            assert (await gw.consent(CUSTOMER, "reject")).status_code == 200  # agreement.rejected
            r = await gw.client.post(f"/v1/agreements/{devices_agreement}/terminate", headers=me)
            assert r.status_code == 200, r.text  # agreement.terminated, by the third party
            r = await gw.client.post(f"/v1/agreements/{services}/renew", headers=me, json={"duration_months": 12})
            assert r.status_code == 200, r.text
            assert (await gw.consent(CUSTOMER)).status_code == 200  # agreement.renewed
            r = await gw.client.post(f"/v1/agreements/{services}/renew", headers=me, json={"duration_months": 6})
            assert (await gw.consent(CUSTOMER, "reject")).status_code == 200  # agreement.renewal_declined
            assert (await gw.invite(token, esi_ids=[(esi1, meter1)], email=CUSTOMER)).status_code == 201
            gw.clock.advance(timedelta(days=gw.config.agreements.invitation_days + 1))
            await gw.run_timers()  # agreement.expired
            ends_at = datetime.fromisoformat((await gw.client.get(
                f"/v1/agreements/{services}", headers=me)).json()["ends_at"])
            gw.clock.advance(ends_at - timedelta(days=20) - gw.clock.now())
            await gw.run_timers()  # agreement.renewal_due
            gw.clock.advance(timedelta(days=21))
            await gw.run_timers()  # agreement.completed

            feed = await _feed(gw.client, me)

            async def all_sent() -> bool:
                return {e["id"] for e in feed if e["type"] != "webhook.dead_letter"} <= good.ids()
            await s.eventually(all_sent)

            # The feed, page by page, is the same as in one page (and maybe more: the failing
            # webhook's later dead letters).
            paged = [e["id"] for e in await _feed(gw.client, me, limit=3)]
            assert paged[:len(feed)] == [e["id"] for e in feed]
            by_type: dict[str, dict[str, Any]] = {}
            for item in feed:
                assert item["event"]["id"] == item["id"] and item["event"]["type"] == item["type"]
                by_type.setdefault(item["type"], item["event"])
            # The usage events (on-demand reads, usage.available) are checked against real ones in
            # tests/pipeline/test_meter_reads_e2e.py, which drives Energy Data agreements.
            examples = {k: v for k, v in examples.items() if k not in USAGE_EVENTS | REPORT_EVENTS}
            assert set(examples) <= set(by_type), f"never produced: {set(examples) - set(by_type)}"
            assert set(by_type) <= set(examples), f"not in the catalogue: {set(by_type) - set(examples)}"
            for kind, example in examples.items():
                assert example["type"] == kind
                assert _shape_differences(example, by_type[kind]) == [], kind

            # Who ended what, as the catalogue says.
            ends = {(e["event"]["type"], e["event"].get("by")) for e in feed if e["event"].get("agreement_id")}
            assert {("agreement.terminated", "third_party"), ("agreement.renewal_declined", "customer"),
                    ("agreement.completed", None)} <= ends

            # Webhook bodies are the feed's, signed, under the event's id, in order per subject.
            bodies = {e["id"]: e["event"] for e in feed}
            for headers, raw in good.attempts:
                event = json.loads(raw)
                assert event == bodies[event["id"]]
                assert headers["webhook-id"] == f"evt_{event['id']}"
                assert verify(secret, headers, raw)
            _in_order_per_subject(good.accepted, {e["id"]: e["subject"] for e in feed})

            # Dead letters: listed in the feed, sent on no webhook (neither the failing one nor the other).
            dead = [e["event"] for e in feed if e["type"] == "webhook.dead_letter"]
            assert dead and all(d["webhook_id"] == bad_id and d["last_error"] == "HTTP 500" for d in dead)
            assert {d["event_id"] for d in dead} <= {json.loads(raw)["id"] for _h, raw in bad.attempts}
            assert not any(json.loads(raw)["type"] == "webhook.dead_letter"
                           for _h, raw in [*bad.attempts, *good.attempts])
            letters = (await gw.client.get(f"/v1/webhooks/{bad_id}/dead-letters", headers=me,
                                           params={"limit": 500})).json()["items"]
            # The bad webhook keeps failing meanwhile: every dead letter seen in the feed is listed,
            # and every listed one is in the feed read after the list.
            listed = {letter["event_id"] for letter in letters}
            assert {d["event_id"] for d in dead} <= listed
            later = {e["event"]["event_id"] for e in await _feed(gw.client, me) if e["type"] == "webhook.dead_letter"}
            assert listed <= later
            assert good_id != bad_id
    finally:
        await receivers.stop()


async def test_another_party_sees_none_of_the_events_or_requests(tmp_path: Path, db_url: str) -> None:
    storage = {} if db_url.startswith("sqlite") else {"storage": {"url": db_url}}
    mine, theirs = Receiver(), Receiver()
    receivers = Receivers()
    try:
        mine_url, theirs_url = await receivers.start(mine), await receivers.start(theirs)
        async with running_stack(tmp_path / "d", **storage) as s:
            gw = s.gw
            _a, acme = await gw.new_party("Acme", "123456789")
            _b, bolt = await gw.new_party("Bolt", "987654321")
            _c, calm = await gw.new_party("Calm", "555555555")  # no webhook: no event channel
            await _webhook(s, acme, mine_url)
            await _webhook(s, bolt, theirs_url)
            (esi0, _m0), (esi1, _m1), (esi2, _m2) = [(p.esi_id, p.meter_number) for p in s.premises[:3]]
            await s.customer(acme, [esi0])
            await s.customer(bolt, [esi1])
            await s.customer(calm, [esi2])
            sent = {}
            for token, esi in ((acme, esi0), (bolt, esi1), (calm, esi2)):
                r = await s.request(token, {"kind": "text", "esi_ids": [esi], "text": "hi"})
                assert r.status_code == 202, r.text
                sent[token] = r.json()["id"]

            async def delivered() -> bool:
                states = [(await s.summary(t, rid))["premises_by_state"] for t, rid in sent.items()]
                return all(state.get("delivered") for state in states)
            await s.eventually(delivered, advance=5)
            feeds = {t: await _feed(gw.client, gw.auth(t)) for t in (acme, bolt, calm)}

            async def all_sent() -> bool:
                return {e["id"] for e in feeds[acme]} <= mine.ids() and {e["id"] for e in feeds[bolt]} <= theirs.ids()
            await s.eventually(all_sent)

            ids = {t: {e["id"] for e in f} for t, f in feeds.items()}
            assert not ids[acme] & ids[bolt] and not ids[acme] & ids[calm] and not ids[bolt] & ids[calm]
            assert mine.ids() == ids[acme] and theirs.ids() == ids[bolt]  # each hook: its party's only
            for token, other in ((acme, sent[bolt]), (bolt, sent[acme])):
                assert {e["event"]["request_id"] for e in feeds[token] if e["type"].startswith("delivery.")} == \
                    {sent[token]}
                assert other not in {r["id"] for r in (await gw.client.get(
                    "/v1/han-requests", headers=gw.auth(token))).json()["items"]}
                assert (await gw.client.get(f"/v1/han-requests/{other}", headers=gw.auth(token))).status_code == 404
            # The cost rule: Calm listens to nothing, so its request's deliveries wrote no event.
            assert {e["type"] for e in feeds[calm]} == {"agreement.invited", "agreement.accepted"}
            assert {e["type"] for e in feeds[acme]} >= {"delivery.state", "agreement.accepted"}
            # The operator lists every request; the feed is a third party's only.
            every = (await gw.client.get("/v1/han-requests", headers=gw.op)).json()["items"]
            assert set(sent.values()) <= {r["id"] for r in every}
            r = await gw.client.get("/v1/events", headers=gw.op)
            assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
            assert (await gw.client.get("/v1/events")).status_code == 401
    finally:
        await receivers.stop()


async def test_a_retried_event_holds_back_its_subject_only(tmp_path: Path) -> None:
    receiver = Receiver()
    refused: list[int] = []
    holding = True

    def refuse_first_delivery_event(event: dict[str, Any]) -> bool:
        """The request's first event is refused (retried with backoff) until `holding` ends."""
        if not refused and event["type"] == "delivery.state":
            refused.append(event["id"])
        return holding and event["id"] in refused
    receiver.refuse = refuse_first_delivery_event
    receivers = Receivers()
    try:
        url = await receivers.start(receiver)
        async with running_stack(tmp_path / "d") as s:
            gw = s.gw
            _a, token = await gw.new_party("Acme", "123456789")
            await _webhook(s, token, url)
            (esi0, _m0), (esi1, meter1) = [(p.esi_id, p.meter_number) for p in s.premises[:2]]
            await s.customer(token, [esi0])
            rid = (await s.request(token, {"kind": "text", "esi_ids": [esi0], "text": "hi",
                                           "confirmation_required": True})).json()["id"]

            async def device_answered() -> bool:
                return bool((await s.summary(token, rid))["devices_by_state"])
            await s.eventually(device_answered, advance=5)
            assert refused, "no delivery event was sent"
            # Another subject's events go on meanwhile.
            agreement = (await gw.invite(token, esi_ids=[(esi1, meter1)], email=CUSTOMER)).json()["id"]

            async def invited() -> bool:
                return any(e.get("agreement_id") == agreement for e in receiver.accepted)
            await s.eventually(invited)
            # The request's later events waited behind the refused one, retried meanwhile.
            assert not any(e.get("request_id") == rid for e in receiver.accepted)
            assert sum(json.loads(raw)["id"] == refused[0] for _h, raw in receiver.attempts) >= 1

            feed = await _feed(gw.client, gw.auth(token))
            of_request = [e["id"] for e in feed if e["subject"] == f"request:{rid}"]
            assert of_request[0] == refused[0] and len(of_request) >= 3
            holding = False

            async def retried() -> bool:
                gw.clock.advance(timedelta(seconds=30))  # past the backoff
                return set(of_request) <= receiver.ids()
            await s.eventually(retried)
            feed = await _feed(gw.client, gw.auth(token))
            _in_order_per_subject(receiver.accepted, {e["id"]: e["subject"] for e in feed})
            # (dict.fromkeys: a repeat is allowed, at least once)
            assert list(dict.fromkeys(e["id"] for e in receiver.accepted if e.get("request_id") == rid)) == \
                [e["id"] for e in feed if e["subject"] == f"request:{rid}"]
    finally:
        await receivers.stop()


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, Any]] = r.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


async def test_han_requests_list_filters_pages_and_refuses_bad_filters(tmp_path: Path) -> None:
    async with running_stack(tmp_path / "d") as s:
        gw = s.gw
        _a, token = await gw.new_party("Acme", "123456789")
        me = gw.auth(token)
        esi = s.premises[0].esi_id
        await s.customer(token, [esi])
        texts = [(await s.request(token, {"kind": "text", "esi_ids": [esi], "text": f"t{i}"})).json()["id"]
                 for i in range(3)]
        gw.clock.advance(timedelta(minutes=5))
        split = gw.clock.now()
        r = await s.request(token, {"kind": "price", "esi_ids": [esi], "provider_id": 7, "price": "0.1190",
                                    "number_of_tiers": 2, "tier": 1, "duration_minutes": 120})
        assert r.status_code == 202, r.text
        price = r.json()["id"]

        async def listed(**params: Any) -> list[int]:
            r = await gw.client.get("/v1/han-requests", headers=me, params=params)
            assert r.status_code == 200, r.text
            return [item["id"] for item in r.json()["items"]]

        assert await listed() == [*texts, price]
        assert await listed(kind="text") == texts
        assert await listed(kind=["price", "text"]) == [*texts, price]
        assert await listed(state="accepted") == [*texts, price]
        assert await listed(state="expanding") == []
        assert await listed(created_after=split.isoformat()) == [price]
        assert await listed(created_before=split.isoformat()) == texts
        # Keyset pages of 2.
        first = (await gw.client.get("/v1/han-requests", headers=me, params={"limit": 2})).json()
        assert [i["id"] for i in first["items"]] == texts[:2] and first["next_cursor"]
        second = await listed(limit=2, cursor=first["next_cursor"])
        assert second == [texts[2], price]
        item = (await gw.client.get("/v1/han-requests", headers=me, params={"kind": "price"})).json()["items"][0]
        assert item["kind"] == "price" and item["state"] == "accepted" and item["fanout"] is False

        bad = _error(await gw.client.get("/v1/han-requests", headers=me, params={"kind": "sms"}))
        assert bad["field"].startswith("kind") and bad["value"] == "sms" and "'text'" in bad["message"]
        bad = _error(await gw.client.get("/v1/han-requests", headers=me, params={"state": "done"}))
        assert bad["field"].startswith("state") and bad["value"] == "done" and "'expanding'" in bad["message"]
        bad = _error(await gw.client.get("/v1/han-requests", headers=me,
                                         params={"created_after": "2026-01-01T00:00:00"}))
        assert bad == {**bad, "field": "created_after", "code": "timezone_required", "value": "2026-01-01T00:00:00"}
        bad = _error(await gw.client.get("/v1/han-requests", headers=me, params={
            "created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}))
        assert bad["field"] == "created_after" and bad["code"] == "empty_interval"
        bad = _error(await gw.client.get("/v1/han-requests", headers=me, params={"created_before": "yesterday"}))
        assert bad["field"] == "created_before" and bad["value"] == "yesterday"
        for cursor in ("99999999999", "9" * 22):
            bad = _error(await gw.client.get("/v1/han-requests", headers=me, params={"cursor": cursor}))
            assert bad["field"] == "cursor"
        for limit in (0, 501):
            assert _error(await gw.client.get("/v1/han-requests", headers=me, params={"limit": limit}))["field"] \
                == "limit"
        # The event feed's cursor: a whole number from 0 to 2^63-1.
        for after in (-1, 2**63, "x", 10**30):
            bad = _error(await gw.client.get("/v1/events", headers=me, params={"after": after}))
            assert bad["field"] == "after" and bad["value"] == str(after)
        page = (await gw.client.get("/v1/events", headers=me, params={"after": 2**63 - 1})).json()
        assert page == {"items": [], "next_after": 2**63 - 1}


def test_the_catalogue_names_every_type_once() -> None:
    """The docs' catalogue parses: every heading has one JSON example of its own type."""
    examples = _catalogue()
    # 13, the usage events (tests/pipeline/test_meter_reads_e2e.py) and the report's
    # (tests/pipeline/test_usage_reports.py)
    assert len(examples) == 17
    assert all(body["type"] == kind and isinstance(body["id"], int) for kind, body in examples.items())
