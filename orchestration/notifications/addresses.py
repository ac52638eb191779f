"""Where an outbound webhook may be sent: the URL rules, and the address rules after DNS.

A URL a user typed is checked when it is saved and again before every send, each time after
resolving its host: every address the name resolves to must be allowed, and the request then
connects to one of those checked addresses (never resolving again), so a name that changes
its answer between the check and the connection (DNS rebinding) gains nothing.

Refused, unless an operator's allow-list (``COOK_WEBHOOK_ALLOWED_NETWORKS``) names the address:
loopback, unspecified, private (RFC 1918, IPv6 unique-local and site-local), link-local,
multicast, cloud metadata addresses, and every other address that is not globally routable
(shared CGNAT space, documentation, benchmarking, reserved ranges). An IPv6 address that
embeds an IPv4 one (IPv4-mapped, NAT64, 6to4, Teredo) is judged by the IPv4 address too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 3.0

# Instance metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; ECS task metadata;
# Alibaba; Oracle; AWS over IPv6). Most are link-local or private anyway: named for the message.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class AddressRefused(Exception):
    """A URL or an address that webhooks may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (one of its host's allowed addresses) and what to send
    as ``Host`` and TLS server name."""

    url: str
    host: str  # as typed (a name or an IP literal), for Host and SNI
    port: int
    https: bool
    address: IPAddress


def parse_networks(values: Sequence[str]) -> list[IPNetwork]:
    """The operator's allow-list: CIDR networks (or single addresses)."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _class_of(address: IPAddress) -> str | None:
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in net for net in PRIVATE if net.version == address.version):
        return "a private address"
    if not address.is_global or address.is_reserved:
        return "a reserved (not globally routable) address"
    return None


def forbidden_class(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why webhooks may not go to ``address`` (e.g. "a loopback address"), or None."""
    if any(address in net for net in allowed if net.version == address.version):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and not any(inner in n for n in allowed if n.version == 4):
            found = _class_of(inner)
            if found is not None:
                return found
    return _class_of(address)


def check_url(url: str, *, require_https: bool) -> SplitResult:
    """The URL's shape (no DNS): http(s), a host, no credentials, no fragment."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"must be at most {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise AddressRefused("must be an ASCII URL without spaces (punycode a host name)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise AddressRefused(f"is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise AddressRefused("must be an http or https URL")
    if require_https and scheme != "https":
        raise AddressRefused("must use https")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("must not hold credentials (user:password@)")
    if parts.fragment:
        raise AddressRefused("must not have a fragment (#...)")
    host = parts.hostname
    if not host:
        raise AddressRefused("must name a host")
    if _literal(host) is None and not all(_LABEL.match(p) for p in host.rstrip(".").split(".")):
        raise AddressRefused("has an invalid host name")
    return parts


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (TCP), bounded in time."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


async def resolve_target(
    url: str,
    *,
    require_https: bool,
    allowed: Sequence[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> Target:
    """Check ``url`` and every address its host resolves to; the first address is the one to
    connect to. Raises ``AddressRefused`` naming the first refused address and its class."""
    parts = check_url(url, require_https=require_https)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await resolver(host, port)
        except (OSError, TimeoutError, UnicodeError, ValueError) as exc:
            raise AddressRefused(f"its host {host!r} does not resolve") from exc
        if not addresses:
            raise AddressRefused(f"its host {host!r} does not resolve")
    for address in addresses:
        why = forbidden_class(address, allowed)
        if why is not None:
            where = "is" if literal is not None else f"resolves to {address}, which is"
            raise AddressRefused(f"its host {where} {why}")
    return Target(url, host, port, https, addresses[0])
