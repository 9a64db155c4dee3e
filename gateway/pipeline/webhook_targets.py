"""Where a webhook may point: the URL's rules (checked at registration) and the addresses a webhook
may reach (checked at registration and again at every connection, since DNS can change).

URLs are parsed by httpx's parser (`httpx.URL`, which also encodes the host with IDNA): the same
parser that turned a bad host into an exception at send time, so a URL accepted here can be sent.
Addresses (SSRF): a webhook may not reach loopback, link-local, private (RFC 1918, ULA),
unspecified, multicast, reserved or otherwise non-global addresses, unless the operator lists
their networks in `[pipeline] webhook_allowed_networks`. A name is refused when any of its
addresses is refused (a name that mixes public and internal addresses is refused as a whole).

At send time `GuardedBackend` (an httpcore network backend) resolves the host itself, checks
every address and connects to the checked address: no second resolution between the check and
the connection (DNS rebinding), while TLS and `Host` still use the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The `webhooks.url` column's size; checked on the normalized URL (IDNA can make a host longer).
MAX_URL_LENGTH = 500
ALLOW_HINT = "the operator may allow its network in [pipeline] webhook_allowed_networks"


class TargetError(Exception):
    """A URL or address a webhook may not use: `code` (machine-readable) and the rule broken."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_url(text: str) -> httpx.URL:
    """The URL as it will be sent, or TargetError naming the rule it breaks."""
    if len(text) > MAX_URL_LENGTH:
        raise TargetError("url_too_long", f"at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise TargetError("invalid_url", "no spaces or control characters (percent-encode them)")
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        # e.g. "Invalid IDNA hostname: '¼'"
        raise TargetError("invalid_url", f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise TargetError("url_scheme", "the scheme must be http or https")
    if url.userinfo:
        raise TargetError("url_userinfo", "no user name or password in the URL (events are signed instead)")
    if not url.host:
        raise TargetError("url_host", "a host is required (http[s]://host[:port]/path)")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise TargetError("url_port", "the port must be between 1 and 65535")
    try:
        url.raw_host.decode("ascii")
    except UnicodeDecodeError:
        raise TargetError("invalid_url", "the host cannot be encoded with IDNA") from None
    if len(str(url)) > MAX_URL_LENGTH:
        raise TargetError("url_too_long", f"at most {MAX_URL_LENGTH} characters once the host is IDNA-encoded")
    return url


def refusal(address: IPAddress, allowed: Iterable[Network] = ()) -> str | None:
    """Why `address` may not be reached by a webhook, or None when it may."""
    candidates: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        # The IPv4 address inside an IPv6 one reaches that IPv4 host: judge it first.
        candidates += [a for a in (address.ipv4_mapped, address.sixtofour, *(address.teredo or ())) if a]
    candidates.append(address)
    nets = list(allowed)
    if any(a in net for a in candidates for net in nets if a.version == net.version):
        return None
    for a in candidates:
        for kind, hit in (("loopback", a.is_loopback), ("unspecified", a.is_unspecified),
                          ("link-local", a.is_link_local), ("multicast", a.is_multicast),
                          ("reserved", a.is_reserved), ("private", a.is_private),
                          ("not globally routable", not a.is_global)):
            if hit:
                return kind
    return None


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """The addresses of `host` (an IP literal is its own address), in resolver order."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise TargetError("unresolvable", f"{host} did not resolve within {timeout:g} s") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError("unresolvable", f"{host} does not resolve: {exc}") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise TargetError("unresolvable", f"{host} has no address")
    return found


def _kind(why: str) -> str:
    if why == "not globally routable":
        return "an address that is not globally routable"
    return f"{'an' if why[0] in 'aeiou' else 'a'} {why} address"


async def allowed_addresses(host: str, port: int, allowed: Sequence[Network], timeout: float) -> list[IPAddress]:
    """The addresses of `host`, all of them allowed, or TargetError. For a name, the refusal says
    which kind of address it resolves to but not the address (no map of the operator's network
    for third parties)."""
    addresses = await resolve(host, port, timeout)
    literal = literal_address(host) is not None
    for address in addresses:
        why = refusal(address, allowed)
        if why is not None:
            where = f"{address} is" if literal else f"{host} resolves to"
            raise TargetError("webhook_target_not_allowed", f"{where} {_kind(why)}; webhooks may reach "
                              f"public addresses only ({ALLOW_HINT})")
    return addresses


async def check_registration(url: httpx.URL, allowed: Sequence[Network], timeout: float) -> None:
    """Refuse a URL whose host is, or now resolves to, an address a webhook may not reach. A name
    that does not resolve (yet) is accepted: every send resolves and checks again."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        await allowed_addresses(url.host, port, allowed, timeout)
    except TargetError as exc:
        if exc.code != "unresolvable":
            raise


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check in front of every TCP connection: it
    resolves the host, refuses when any address is not allowed, and connects to the checked
    addresses (in order) itself."""

    def __init__(self, allowed: Sequence[Network], resolve_timeout: float,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allowed = list(allowed)
        self.resolve_timeout = resolve_timeout
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        wait = self.resolve_timeout if timeout is None else min(timeout, self.resolve_timeout)
        addresses = await allowed_addresses(host, port, self.allowed, wait)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise TargetError("webhook_target_not_allowed", "webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
