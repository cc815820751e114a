"""Which headers cross the gateway, in each direction (pure).

Towards the upstream, an allowlist: of the client's headers only ``anthropic-version``,
``anthropic-beta`` (repeated ones joined in order) and ``accept`` pass; ``content-type`` is the
edge's (it forwards a JSON body it has parsed), ``user-agent`` names the edge, and ``x-api-key``
is the pool's key. So nothing else the client sends reaches Anthropic: not its key
(``x-api-key``, ``authorization``), cookies, its network (``x-forwarded-for``, ``x-real-ip``,
``forwarded``, ``cf-connecting-ip``, ``true-client-ip``...), an ``origin`` (which the API refuses
with a 401 that would look like a bad key), nor what its SDK says about its machine
(``x-stainless-*``). ``anthropic-version`` defaults to ``2023-06-01``.

Towards the client: only the headers that describe the answer itself. Everything that
identifies the upstream account or its infrastructure (``anthropic-organization-id``,
``anthropic-ratelimit-*``, ``request-id``, ``cf-*``, ``x-envoy-*``, ``set-cookie``, ``server``,
``via``...) stays behind; the edge's own ``request-id`` replaces the upstream's.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = "aiapi-edge"

# The only client headers the upstream sees.
FORWARDED = frozenset({b"anthropic-version", b"anthropic-beta", b"accept"})

# The only upstream response headers a client sees.
PASSED_BACK = frozenset({b"content-type", b"cache-control", b"retry-after"})


def upstream_request_headers(
    client_headers: Iterable[tuple[bytes, bytes]], api_key: str
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in client_headers:
        lowered = raw_name.lower()
        if lowered not in FORWARDED:
            continue
        name = lowered.decode("latin-1")
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.setdefault("anthropic-version", DEFAULT_ANTHROPIC_VERSION)
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
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
