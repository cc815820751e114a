"""Who the client is, for throttling: the socket peer, or, when the peer is a proxy the operator
trusts (``AIAPI_TRUSTED_PROXIES``), the address that proxy forwarded. Pure: no I/O.

Forwarding headers are plain request headers: anyone can send them. They are read only when the
socket peer is a trusted proxy, and only the one header the proxy is configured to write
(``AIAPI_FORWARDED_HEADER``): a proxy passes the other one through untouched, so it would carry
whatever the client put there. The header's list is walked from the right (the hop nearest to
us) past trusted proxies; the first address not trusted is the client. Anything left of it was
written by that client and means nothing.

IPv6 clients are grouped by their /64: one subscriber usually holds a whole /64, so counting
single IPv6 addresses would give an attacker 2^64 fresh budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]

IPV6_PREFIX = 64


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 10.1.0.0/16, fd00::/8"`` as networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {entry!r}") from None
    return tuple(networks)


def _address(raw: str) -> Address | None:
    """An address from a forwarding entry: bare, quoted, ``[v6]:port`` or ``v4:port``."""
    text = raw.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _hops(values: Iterable[str], header: ForwardedHeader) -> list[str]:
    """The header's entries in order, left (first client) to right (last proxy)."""
    entries = [item for value in values for item in value.split(",")]
    if header == "x-forwarded-for":
        return entries
    hops: list[str] = []
    for element in entries:
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                hops.append(value)
    return hops


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(
    peer: str | None,
    header_values: Iterable[str],
    proxies: Sequence[Network],
    header: ForwardedHeader = "x-forwarded-for",
) -> str:
    """The client's address as text (canonical form), or ``"unknown"`` without a peer."""
    found = _address(peer) if peer else None
    if found is None:
        return peer or "unknown"
    if not _trusted(found, proxies):
        return str(found)
    for hop in reversed(_hops(header_values, header)):
        address = _address(hop)
        if address is None:
            break  # garbage or an obfuscated hop: keep the last address a trusted hop gave us
        found = address
        if not _trusted(address, proxies):
            break
    return str(found)


def throttle_key(ip: str) -> str:
    """What throttling counts an address as: IPv4 as is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
