"""A Texas customer who chose Spanish (`customer_language: "es"` on the invitation, SMT's
customerLanguagePreference): the invitation, confirmation and end emails and the consent and
termination pages are in Spanish, from the catalogues; English stays the default; a language the
gateway does not have is a 422 naming the field."""

from __future__ import annotations

from email.header import decode_header, make_header
from email.message import Message

from tests.gateway.conftest import ONCOR, ONCOR_2, ONCOR_EAST, Gateway
from tests.gateway.pages_helpers import text_of

ANA, BEN = "alice@example.test", "bob@example.test"  # the premises' customers of record


def _subject(mail: Message) -> str:
    return str(make_header(decode_header(mail["Subject"])))


async def _invite(gw: Gateway, token: str, esi: str, meter: str, email: str, **extra: object) -> int:
    r = await gw.client.post("/v1/agreements", headers=gw.auth(token), json={
        "kind": "in_home_device_services", "scopes": ["text", "price"],
        "premises": [{"esi_id": esi, "meter_number": meter}], "customer_email": email,
        "duration_months": 12, **extra})
    assert r.status_code == 201, r.text
    agreement_id: int = r.json()["id"]
    return agreement_id


async def test_a_spanish_speaking_customer_gets_spanish_pages_and_emails(gateway: Gateway) -> None:
    gw = gateway
    await gw.load_premises()
    _p, token = await gw.new_party("Acme", "111111111")
    agreement = await _invite(gw, token, ONCOR, "MTR-1", ANA, customer_language="es")
    r = await gw.client.get(f"/v1/agreements/{agreement}", headers=gw.auth(token))
    assert r.json()["customer_language"] == "es"

    [invitation] = gw.mails_to(ANA)
    assert _subject(invitation) == "Acme le pide su consentimiento"
    body = gw.body(invitation)
    assert "le pide su consentimiento para enviar mensajes de texto y precios" in body
    assert "durante 12 meses." in body and "El enlace funciona una sola vez" in body
    assert "en español o en inglés" in body  # the customer's page link, in Spanish

    link = gw.link(invitation, "/consent/")
    page = await gw.client.get(link)
    assert page.status_code == 200 and '<html lang="es">' in page.text
    seen = text_of(page)
    assert "Su decisión" in seen and "Aceptar" in seen and "Rechazar" in seen and "12 meses desde" in seen
    assert "Accept" not in seen
    done = await gw.client.post(link, data={"decision": "accept"})
    assert done.status_code == 200 and "Consentimiento otorgado" in done.text and "Usted aceptó" in done.text

    confirmation = gw.mails_to(ANA)[-1]
    assert _subject(confirmation) == f"Usted aceptó el acuerdo {agreement} de Acme"
    assert "Puede terminar este acuerdo en cualquier momento aquí" in gw.body(confirmation)
    terminate = gw.link(confirmation, "/agreements/terminate/")
    page = await gw.client.get(terminate)
    assert '<html lang="es">' in page.text and "Terminar este acuerdo ahora" in page.text
    # The visitor's own choice of language (the pages' switch cookie) wins over the agreement's.
    english = await gw.client.get(terminate, headers={"Cookie": "hangw_lang=en"})
    assert '<html lang="en">' in english.text and "End this agreement now" in english.text
    ended = await gw.client.post(terminate, data={"decision": "terminate"})
    assert "Acuerdo terminado" in ended.text and f"El acuerdo número {agreement} terminó" in text_of(ended)

    # The third party ends another Spanish agreement: the end notice is in Spanish too.
    second = await _invite(gw, token, ONCOR_2, "MTR-2", ANA, customer_language="es")
    assert (await gw.consent(ANA)).status_code == 200
    assert (await gw.client.post(f"/v1/agreements/{second}/terminate", headers=gw.auth(token))).status_code == 200
    notice = gw.mails_to(ANA)[-1]
    assert _subject(notice) == "Su acuerdo con Acme terminó"
    assert f"El acuerdo número {second} con Acme" in gw.body(notice) and "Acme lo terminó" in gw.body(notice)


async def test_english_is_the_default_and_an_unknown_language_is_refused(gateway: Gateway) -> None:
    gw = gateway
    await gw.load_premises()
    _p, token = await gw.new_party("Acme", "111111111")
    agreement = await _invite(gw, token, ONCOR_EAST, "MTR-3", BEN)
    r = await gw.client.get(f"/v1/agreements/{agreement}", headers=gw.auth(token))
    assert r.json()["customer_language"] == "en"
    [invitation] = gw.mails_to(BEN)
    assert _subject(invitation) == "Acme asks for your consent"
    page = await gw.client.get(gw.link(invitation, "/consent/"))
    assert '<html lang="en">' in page.text and "Your decision" in page.text
    r = await gw.client.post("/v1/agreements", headers=gw.auth(token), json={
        "kind": "in_home_device_services", "scopes": ["text"],
        "premises": [{"esi_id": ONCOR_EAST, "meter_number": "MTR-3"}],
        "customer_email": BEN, "duration_months": 12, "customer_language": "fr"})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["field"] == "customer_language" and error["value"] == "fr"
