"""Outbound SSRF guard: refuse loopback, private, link-local and metadata addresses.

Hostnames are resolved once and the answers returned, so the caller connects to exactly the addresses
that were checked (DNS pinning defeats rebinding between check and connect).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.errors import OutboundBlocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"})


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL that passed the guard, with the addresses its host resolved to (connect only to these)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _parse_literal(host: str) -> IPAddress | None:
    """Parse an IP literal in any form a resolver accepts (dotted, decimal, hex, octal, short, IPv6)."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    try:
        # inet_aton accepts 2130706433, 0x7f000001, 0177.0.0.1 and 127.1 like libc resolvers do.
        return ipaddress.IPv4Address(socket.inet_aton(h))
    except OSError:
        return None


def _blocked(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _blocked(mapped)
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 embeds an IPv4 address
            return _blocked(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata range)"
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "non-public"
    return None


def check_outbound_url(url: str, allow_private: bool = False) -> CheckedURL:
    """Check that ``url`` points at a public host; return it with its pinned addresses.

    Raises :class:`OutboundBlocked` for non-http(s) schemes, metadata host names, and any resolved
    address that is loopback, private, link-local, multicast, reserved or otherwise not global,
    including decimal/hex/octal IPv4 forms and IPv6-mapped IPv4. ``allow_private`` (local sandboxes)
    skips the address checks but still resolves and pins.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundBlocked(f"refused {url!r}: scheme must be http or https")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise OutboundBlocked(f"refused {url!r}: no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundBlocked(f"refused {url!r}: bad port") from None
    if not allow_private and host in _METADATA_HOSTS:
        raise OutboundBlocked(f"refused {url!r}: cloud metadata host")
    literal = _parse_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OutboundBlocked(f"refused {url!r}: cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for ip in addresses:
            reason = _blocked(ip)
            if reason:
                raise OutboundBlocked(f"refused {url!r}: {host} resolves to {ip} ({reason})")
    unique = tuple(dict.fromkeys(str(ip) for ip in addresses))
    return CheckedURL(url=url, scheme=parts.scheme, host=host, port=port, addresses=unique)
