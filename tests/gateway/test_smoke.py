from tests.gateway.conftest import ONCOR, Gateway


async def test_invite_accept(gateway: Gateway) -> None:
    await gateway.load_premises()
    _pid, token = await gateway.new_party("Acme", "123456789")
    aid = await gateway.active_agreement(token, ONCOR, "MTR-1", "alice@example.test")
    r = await gateway.client.get(f"/v1/agreements/{aid}", headers=gateway.auth(token))
    assert r.json()["state"] == "active"
