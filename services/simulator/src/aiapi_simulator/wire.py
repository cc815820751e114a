"""HTTP plumbing shared by the handlers: ids, the real API's response headers, sending bodies."""

from __future__ import annotations

import itertools
import secrets
import string
from datetime import UTC, datetime, timedelta

from starlette.types import Send

from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.errors import ApiError, error_body

Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"
_ALPHABET = string.ascii_letters + string.digits


class IdMaker:
    """Unique ids shaped like the real ones (`req_…`, `msg_…`): a random per-process stem and a
    counter, so making one costs a string format, not a syscall."""

    def __init__(self) -> None:
        self._stem = "011Sim" + "".join(secrets.choice(_ALPHABET) for _ in range(8))
        self._counter = itertools.count(1)

    def next(self, prefix: str) -> str:
        return f"{prefix}_{self._stem}{next(self._counter):010d}"


def upstream_headers(config: SimulatorConfig) -> Headers:
    """Headers the real API sends that identify the upstream account or its infrastructure;
    a gateway is expected to drop them (tests check it does)."""
    reset = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    headers: Headers = [(b"anthropic-organization-id", config.organization_id.encode())]
    for kind, limit in (
        (b"requests", b"4000"),
        (b"input-tokens", b"2000000"),
        (b"output-tokens", b"400000"),
        (b"tokens", b"2400000"),
    ):
        prefix = b"anthropic-ratelimit-" + kind
        headers += [
            (prefix + b"-limit", limit),
            (prefix + b"-remaining", limit),
            (prefix + b"-reset", reset),
        ]
    headers += [
        (b"x-envoy-upstream-service-time", b"1"),
        (b"cf-cache-status", b"DYNAMIC"),
        (b"cf-ray", secrets.token_hex(8).encode() + b"-SJC"),
        (b"x-robots-tag", b"none"),
        (b"via", b"1.1 google"),
        (b"server", b"cloudflare"),
    ]
    return headers


class Wire:
    """Builds response headers from a precomputed static part and sends whole bodies."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._static = upstream_headers(config)

    def headers(self, request_id: str, content_type: bytes, length: int | None = None) -> Headers:
        headers: Headers = [(b"content-type", content_type), (b"request-id", request_id.encode())]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        headers += self._static
        return headers

    async def send_body(
        self,
        send: Send,
        status: int,
        request_id: str,
        body: bytes,
        content_type: bytes = JSON,
        extra: Headers | None = None,
    ) -> None:
        headers = self.headers(request_id, content_type, len(body))
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def send_error(self, send: Send, error: ApiError, request_id: str) -> None:
        body = error_body(error.error_type, error.message, request_id, error.error_code)
        await self.send_body(send, error.status, request_id, body, extra=error.headers)
