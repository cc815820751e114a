"""Who the client is (pure): forwarding headers believed only from trusted proxies, walked from
the right, IPv6 grouped by /64."""

from __future__ import annotations

import pytest
from aiapi_accounts.clientaddr import client_ip, parse_networks, throttle_key

PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "values", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("198.51.100.4", ["203.0.113.1"], "198.51.100.4"),
        # A trusted peer's header: the rightmost address that is not a trusted proxy.
        ("127.0.0.1", ["203.0.113.1"], "203.0.113.1"),
        ("127.0.0.1", ["192.0.2.9, 203.0.113.1, 10.9.8.7"], "203.0.113.1"),
        ("127.0.0.1", ["192.0.2.9", "203.0.113.1, 10.9.8.7"], "203.0.113.1"),  # two header lines
        # Only trusted hops: the leftmost of them.
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
        # No header: the proxy itself.
        ("10.1.1.1", [], "10.1.1.1"),
        # Garbage where the proxy should have written an address: the last good hop.
        ("127.0.0.1", ["203.0.113.1, unknown"], "127.0.0.1"),
        ("127.0.0.1", ["unknown, 203.0.113.1"], "203.0.113.1"),
        # Ports, brackets and IPv4-mapped IPv6.
        ("127.0.0.1", ["203.0.113.1:5555"], "203.0.113.1"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:10.0.0.1", ["203.0.113.1"], "203.0.113.1"),
        ("fd00::1", ["2001:db8::2"], "2001:db8::2"),
        (None, ["203.0.113.1"], "unknown"),
    ],
)
def test_x_forwarded_for(peer: str | None, values: list[str], expected: str) -> None:
    assert client_ip(peer, values, PROXIES) == expected


def test_forwarded_header_reads_the_for_parameters() -> None:
    values = ['for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"']
    assert client_ip("127.0.0.1", values, PROXIES, "forwarded") == "2001:db8:cafe::17"
    assert client_ip("127.0.0.1", ["for=_hidden, for=198.51.100.3"], PROXIES, "forwarded") == (
        "198.51.100.3"
    )
    assert client_ip("127.0.0.1", ["proto=https"], PROXIES, "forwarded") == "127.0.0.1"


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("127.0.0.1", ["203.0.113.1"], ()) == "127.0.0.1"


def test_throttle_key_groups_ipv6_by_64() -> None:
    assert throttle_key("2001:db8:cafe:1:2:3:4:5") == "2001:db8:cafe:1::/64"
    assert throttle_key("2001:db8:cafe:1::9") == throttle_key("2001:db8:cafe:1:ffff::1")
    assert throttle_key("203.0.113.1") == "203.0.113.1"
    assert throttle_key("unknown") == "unknown"


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks("10.0.0.1/8,::1")] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match=r"proxy\.local"):
        parse_networks("10.0.0.1, proxy.local")
