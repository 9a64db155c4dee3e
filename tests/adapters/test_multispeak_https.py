"""MultiSpeak over HTTPS: the adapter verifies the head-end's certificate (a CA made for the test)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ams_adapters.contract import ContractError, DeliveredToMeter, OperationKind, SubmitOutcome
from ams_adapters.factory import AdapterConfig, make_adapter
from ams_adapters.profiles import load_profile
from sandbox.headends import headend_for_profile
from simulators.clock import RealClock
from tests.adapters.harness import QuickFleet, op


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "headend.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "headend.pem", tmp / "headend.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_multispeak_over_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    clock = RealClock(seed=1)
    fleet = QuickFleet(3, clock)
    headend = headend_for_profile(load_profile("oncor"), fleet, clock, ssl_context=server_tls)
    await headend.start()
    port = headend.port  # type: ignore[attr-defined]
    try:
        untrusted = make_adapter(AdapterConfig(tdsp="oncor", url=f"https://127.0.0.1:{port}",
                                               profile_overrides={"retries": 0}))
        await untrusted.start()
        (refused,) = await untrusted.submit([op(OperationKind.PRICE, fleet.esi_id(0))])
        await untrusted.close()
        assert refused.outcome is SubmitOutcome.RETRY_LATER and "transport" in (refused.reason or "")

        adapter = make_adapter(AdapterConfig(tdsp="oncor", url=f"https://127.0.0.1:{port}", ca_file=str(cert)))
        await adapter.start()
        try:
            o = op(OperationKind.PRICE, fleet.esi_id(0))
            (res,) = await adapter.submit([o])
            assert res.outcome is SubmitOutcome.ACCEPTED, res
            deadline = time.monotonic() + 5
            seen: list[object] = []
            while time.monotonic() < deadline and not any(isinstance(e, DeliveredToMeter) for e in seen):
                seen += await adapter.drain(0.2)
            assert any(isinstance(e, DeliveredToMeter) and e.outbound_id == o.outbound_id for e in seen)
        finally:
            await adapter.close()
    finally:
        await headend.close()



async def test_not_server_callbacks_over_https(tmp_path: Path) -> None:
    """The gateway's NOT_Server endpoint serves HTTPS with its certificate; the head-end posts its
    callbacks there and verifies the certificate with the CA it was given."""
    cert, key = _self_signed(tmp_path)
    clock = RealClock(seed=2)
    fleet = QuickFleet(3, clock)
    trusting = headend_for_profile(load_profile("oncor"), fleet, clock,
                            callback_ssl_context=ssl.create_default_context(cafile=str(cert)))
    await trusting.start()
    port = trusting.port  # type: ignore[attr-defined]
    adapter = make_adapter(AdapterConfig(tdsp="oncor", url=f"http://127.0.0.1:{port}", callback_cert_file=str(cert),
                                         callback_key_file=str(key)))
    await adapter.start()
    try:
        assert adapter.transport.response_url.startswith("https://127.0.0.1:")  # type: ignore[attr-defined]
        o = op(OperationKind.PRICE, fleet.esi_id(0))
        (res,) = await adapter.submit([o])
        assert res.outcome is SubmitOutcome.ACCEPTED, res
        deadline = time.monotonic() + 5
        seen: list[object] = []
        while time.monotonic() < deadline and not any(isinstance(e, DeliveredToMeter) for e in seen):
            seen += await adapter.drain(0.2)
        assert any(isinstance(e, DeliveredToMeter) and e.outbound_id == o.outbound_id for e in seen)
    finally:
        await adapter.close()
        await trusting.close()

    # A head-end that does not trust the callback certificate cannot deliver its callbacks.
    # (It retries a failed callback for 1 s here, not the default 120 s, so the test sees it give up.)
    untrusting = headend_for_profile(load_profile("oncor"), fleet, clock, callback_retry_s=1.0)
    await untrusting.start()
    port = untrusting.port  # type: ignore[attr-defined]
    adapter = make_adapter(AdapterConfig(tdsp="oncor", url=f"http://127.0.0.1:{port}", callback_cert_file=str(cert),
                                         callback_key_file=str(key)))
    await adapter.start()
    try:
        (res,) = await adapter.submit([op(OperationKind.PRICE, fleet.esi_id(1))])
        assert res.outcome is SubmitOutcome.ACCEPTED, res
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not untrusting.callbacks_failed:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        assert untrusting.callbacks_failed  # type: ignore[attr-defined]
        assert not any(isinstance(e, DeliveredToMeter) for e in await adapter.drain(0.1))
    finally:
        await adapter.close()
        await untrusting.close()


def test_callback_tls_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as info:
        make_adapter(AdapterConfig(tdsp="oncor", url="http://127.0.0.1:1", callback_cert_file=str(tmp_path / "no.pem"),
                                   callback_key_file=str(tmp_path / "no.key")))
    assert info.value.field == "callback_cert_file" and "readable PEM" in info.value.limit
