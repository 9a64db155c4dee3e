"""The server-rendered pages: the customer's page (`customer`), the third parties' dashboard
(`dashboard`), and what they share — languages (`i18n`), the signed session cookie and CSRF tokens
(`sessions`), the keys behind the cookie and the customer's emailed links (`keys`), rendering
(`render`). The consent and termination pages reached from single-use links stay in
gateway/api/consent_pages.py.
"""
