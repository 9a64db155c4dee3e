"""The receiver's check printed in docs/third-party-api.md verifies what the gateway signs, and
rejects a changed body; the signature is the Standard Webhooks one (a published test vector)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gateway.pipeline.webhooks import new_secret, sign, verify

DOC = Path(__file__).resolve().parents[2] / "docs" / "third-party-api.md"


def test_documented_receiver_check_verifies_the_gateway_signature() -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8").split("## Webhooks")[1], re.S)
    assert code
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    secret = new_secret()
    body = '{"type": "delivery.state", "state": "delivered"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1767225600",
               "webhook-signature": sign(secret, "msg_1", 1767225600, body)}
    assert namespace["verify"](secret, headers, body)
    assert verify(secret, headers, body)
    assert not namespace["verify"](secret, headers, body.replace("delivered", "failed"))


def test_standard_webhooks_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = '{"test": 2432232314}'
    assert sign(secret, msg_id, ts, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
