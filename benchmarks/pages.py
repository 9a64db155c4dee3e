"""The third party's dashboard against the REST calls it stands for, on the same gateway, same run.

A gateway on loopback (SQLite) with N premises under one agreement of one party, a device it
provisioned on each, and a few requests. Measured, each `--rounds` times after one warm-up:

- page: `GET /dashboard` with a signed-in session (agreements, premises with their devices, request
  counts, the 24-hour chart, webhooks), rendered by the server;
- api: what a client reads over the API for the same picture: `GET /v1/agreements`,
  `GET /v1/premises`, then `GET /v1/premises/{esi_id}/devices` for each premise (sequentially).

    python -m benchmarks.pages [--premises 200] [--rounds 20]

Last line: `pages ratio vs api: X` (the page's median seconds over the API calls' median; below 1:
the page is cheaper than the calls it replaces).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

from sandbox.local_gateway import install_code, running_gateway

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MAX_PER_INVITATION = 200


def _csv(n: int) -> str:
    lines = ["esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter"]
    lines += [f"1044372{i:010d},MTR-{i},bench@example.test,Volt REP,residential,1.1,no" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


async def run(premises: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hangw-bench-pages-") as tmp:
        async with running_gateway(Path(tmp) / "data", rate_limit={"requests_per_second": 100000.0,
                                                                   "burst": 1000000}) as gw:
            await gw.load_premises(_csv(premises))
            _pid, token = await gw.new_party("Bench", "123456789")
            esis = [f"1044372{i:010d}" for i in range(1, premises + 1)]
            for start in range(0, premises, MAX_PER_INVITATION):
                chunk = esis[start:start + MAX_PER_INVITATION]
                r = await gw.invite(token, esi_ids=[(e, f"MTR-{int(e[-10:])}") for e in chunk],
                                    email="bench@example.test", kind="in_home_device")
                assert r.status_code == 201, r.text
                accepted = await gw.consent("bench@example.test")
                assert accepted.status_code == 200, accepted.text
            for i, esi in enumerate(esis):
                r = await gw.client.post(f"/v1/premises/{esi}/devices", headers=gw.auth(token), json={
                    "eui64": f"00124B00{i:08X}", "install_code": install_code(i), "device_type": "thermostat"})
                assert r.status_code == 201, r.text

            # A browser's session: sign in once.
            form = await gw.client.get("/dashboard/sign-in")
            csrf = CSRF.search(form.text)
            assert csrf is not None
            r = await gw.client.post("/dashboard/sign-in", data={"token": token, "csrf_token": csrf.group(1)})
            assert r.status_code == 303, r.text

            async def page() -> None:
                r = await gw.client.get("/dashboard")
                assert r.status_code == 200 and esis[-1] in r.text, r.text[:500]

            async def api() -> None:
                auth = gw.auth(token)
                assert (await gw.client.get("/v1/agreements", headers=auth)).status_code == 200
                listed = (await gw.client.get("/v1/premises", headers=auth, params={"limit": 500})).json()["items"]
                assert len(listed) == premises
                for p in listed:
                    assert (await gw.client.get(f"/v1/premises/{p['esi_id']}/devices", headers=auth)).status_code == 200

            times: dict[str, list[float]] = {"page": [], "api": []}
            for warm_up in (page, api):
                await warm_up()
            for _ in range(rounds):  # interleaved: both see the same machine load
                for which, call in (("page", page), ("api", api)):
                    start = time.perf_counter()
                    await call()
                    times[which].append(time.perf_counter() - start)
    page_med, api_med = statistics.median(times["page"]), statistics.median(times["api"])
    print(f"premises={premises} rounds={rounds}")
    print(f"page GET /dashboard: median {page_med * 1000:.1f} ms, max {max(times['page']) * 1000:.1f} ms")
    print(f"api {premises + 2} calls: median {api_med * 1000:.1f} ms, max {max(times['api']) * 1000:.1f} ms")
    return page_med / api_med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--premises", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    ratio = asyncio.run(run(args.premises, args.rounds))
    print(f"pages ratio vs api: {ratio:.2f}")


if __name__ == "__main__":
    main()
