"""Which headers cross the gateway, in each direction (pure).

Towards the upstream: the client's headers minus its credential, hop-by-hop headers and what
identifies the client's network; the pool's key is added, ``anthropic-version`` defaults to
``2023-06-01``, and repeated headers (several ``anthropic-beta``) are joined in order.

Towards the client: only the headers that describe the answer itself. Everything that
identifies the upstream account or its infrastructure (``anthropic-organization-id``,
``anthropic-ratelimit-*``, ``request-id``, ``cf-*``, ``x-envoy-*``, ``set-cookie``, ``server``,
``via``...) stays behind; the edge's own ``request-id`` replaces the upstream's.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "authorization",
        "x-api-key",
        "cookie",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "accept-encoding",
        "forwarded",
        "x-real-ip",
    }
)

# The only upstream response headers a client sees.
PASSED_BACK = frozenset({b"content-type", b"cache-control", b"retry-after"})


def upstream_request_headers(
    client_headers: Iterable[tuple[bytes, bytes]], api_key: str
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in client_headers:
        name = raw_name.decode("latin-1").lower()
        if name in _NOT_FORWARDED or name.startswith("x-forwarded-"):
            continue
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.setdefault("anthropic-version", DEFAULT_ANTHROPIC_VERSION)
    headers.setdefault("content-type", "application/json")
    headers["x-api-key"] = api_key
    return headers


def client_response_headers(
    upstream_headers: Iterable[tuple[bytes, bytes]], request_id: bytes
) -> list[tuple[bytes, bytes]]:
    kept = [
        (name.lower(), value) for name, value in upstream_headers if name.lower() in PASSED_BACK
    ]
    kept.append((b"request-id", request_id))
    return kept
