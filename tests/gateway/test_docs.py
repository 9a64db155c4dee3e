"""The guides' examples run: docs/operator.md's ```sh blocks in a shell (then `hangw serve` on
the config they wrote), docs/third-party-api.md's ```http exchanges against a running gateway."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from sandbox.ports import free_port
from tests.gateway.conftest import Gateway

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$|^<!-- test: (.*?) -->$", re.S | re.M)
COMPARED = {"state", "code", "status", "kind", "role", "allowed", "reason", "renewal_pending",
            "resend_count", "duration_months", "esi_id", "tdsp", "name", "duns", "label",
            "meter_number", "se_version", "scopes", "agreement_id"}


def blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of every fenced block, and ("test", directive) for test comments."""
    out = []
    for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
        if match.group(3) is not None:
            out.append(("test", match.group(3)))
        else:
            out.append((match.group(1), match.group(2)))
    return out


def test_operator_guide_runs(tmp_path: Path) -> None:
    script = "\n".join(text for lang, text in blocks(DOCS / "operator.md") if lang == "sh")
    assert "hangw admin" in script and "hangw config check" in script
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("HANGW_")}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "hangw.toml: OK" in done.stdout
    assert (tmp_path / "acme.token").read_text().startswith("hgw_")
    assert "Acme Thermostats" in done.stdout
    assert "2 created" in (tmp_path / "import.err").read_text() or "2 created" in done.stdout

    # `hangw serve` on that config, on a free port given through the environment.
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c", "hangw.toml"],
                              cwd=tmp_path, env={**env, "HANGW_SERVER__PORT": str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "hangw serve did not come up"
                time.sleep(0.1)
        assert ready.json()["status"] == "ready"
        token = (tmp_path / "operator.token").read_text().strip()
        r = httpx.get(f"{base}/v1/premises", headers={"Authorization": f"Bearer {token}"})
        assert len(r.json()["items"]) == 2
        assert "hangw_http_requests_total" in httpx.get(f"{base}/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM).
    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete." in err
    log_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e.get("route") == "/v1/premises" and e.get("status") == 200 for e in log_lines)


def parse_http(text: str) -> tuple[str, dict[str, str], str]:
    head, _, body = text.partition("\n\n")
    first, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, body.strip()


def check_subset(documented: Any, actual: Any, where: str) -> None:
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in documented.items():
            assert key in actual, f"{where}: missing key {key!r} in {actual!r}"
            if isinstance(value, dict | list) and key != "scopes":
                check_subset(value, actual[key], f"{where}.{key}")
            elif key in COMPARED:
                assert actual[key] == value, f"{where}.{key}: {actual[key]!r} != {value!r}"
    elif isinstance(documented, list):
        if documented and isinstance(documented[0], dict) and "field" in documented[0]:
            want = {(e["field"], e["code"]) for e in documented}
            got = {(e["field"], e["code"]) for e in actual}
            assert want == got, f"{where}: errors {got} != documented {want}"
            return
        assert len(actual) >= len(documented), f"{where}: {actual!r}"
        for i, item in enumerate(documented):
            check_subset(item, actual[i], f"{where}[{i}]")


def _deref(node: Any, spec: dict[str, Any]) -> Any:
    """`node` with every `$ref` into the OpenAPI document inlined (the models are not recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _deref(target, spec)
        return {k: _deref(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, spec) for v in node]
    return node


def _partial(schema: Any) -> Any:
    """The schema of an example that shows some fields only: nothing required, but no field that
    the model does not have (a misspelt or removed field in the guide fails)."""
    if isinstance(schema, dict):
        out = {k: _partial(v) for k, v in schema.items() if k != "required"}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_partial(v) for v in schema]
    return schema


def response_schema(spec: dict[str, Any], method: str, target: str, status: int) -> dict[str, Any]:
    """The schema of the answer `status` to `method target` in the OpenAPI document."""
    path = httpx.URL(target).path
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\{[a-z_0-9]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            responses = item[method.lower()]["responses"]
            assert str(status) in responses, f"{method} {template}: {status} is not documented"
            content = responses[str(status)].get("content", {})
            media = content.get("application/json") or content.get("application/problem+json") or {}
            assert content == {} or "schema" in media, f"{method} {template} {status}: no schema"
            return dict(_deref(media.get("schema", {}), spec))
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


async def test_third_party_guide_runs(gateway: Gateway) -> None:
    await gateway.load_premises(
        "esi_id,meter_number,customer_email,rep,premise_class,se_version,enhanced_meter\n"
        "10443720000000001,LG-0001,alice@example.com,Volt Energy,residential,1.1,false\n"
        "1008901000000000000002,IT-0002,bob@example.com,Bayou Power,residential,1.0,true\n")
    _party_id, token = await gateway.new_party("Acme Thermostats", "123456789")
    items = blocks(DOCS / "third-party-api.md")
    exchanges = 0
    spec = (await gateway.client.get("/openapi.json")).json()
    pending: tuple[str, httpx.Response] | None = None
    for lang, text in items:
        if lang == "test":
            verb, _, email = text.partition(" accepts ")
            assert verb == "customer" and email, f"unknown test directive {text!r}"
            assert (await gateway.consent(email.strip())).status_code == 200
            continue
        if lang != "http":
            continue
        first, headers, body = parse_http(text.replace("$TOKEN", token))
        if not first.startswith("HTTP/"):
            method, target, _version = first.split()
            response = await gateway.client.request(
                method, target, headers=headers,
                content=json.dumps(json.loads(body)) if body else None)
            pending = (first, response)
            continue
        assert pending is not None, f"response block without a request: {first}"
        request_line, response = pending
        pending = None
        exchanges += 1
        status = int(first.split()[1])
        assert response.status_code == status, f"{request_line}: {response.text}"
        for name, value in headers.items():
            if name == "content-type":
                assert response.headers[name].startswith(value), request_line
            else:
                assert response.headers.get(name) == value, f"{request_line}: header {name}"
        method, target, _version = request_line.split()
        schema = response_schema(spec, method, target, status)
        if response.content:  # the answer itself, in full, against its documented model
            jsonschema.validate(response.json(), schema)
        if body:
            documented = json.loads(body.replace("…", ""))
            check_subset(documented, response.json(), request_line)
            # The guide's (partial) example shows only fields the model has, with their types.
            jsonschema.validate(documented, _partial(schema))
    assert exchanges >= 12
