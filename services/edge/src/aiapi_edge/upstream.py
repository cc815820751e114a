"""Calling the upstream: pooled keep-alive connections, retries on another key before any byte
has reached the client, and the key's health recorded by error class (see :mod:`.pool`).

Only the answer's status decides a retry: the body of a successful answer is the route's to
stream. An upstream 4xx about the customer's own request (other than 401/403/429 and "credit
balance too low", which are about the upstream key) is returned as is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiapi_edge.errors import GatewayError
from aiapi_edge.headers import upstream_request_headers
from aiapi_edge.http_client import HttpClient, HttpClientError, HttpResponse
from aiapi_edge.metrics import Metrics
from aiapi_edge.pool import Outcome, UpstreamPool

log = logging.getLogger("aiapi.edge.upstream")

_CREDIT_TOO_LOW = b"credit balance is too low"


@dataclass(slots=True)
class UpstreamAnswer:
    """An upstream response whose status is final (no more retries). Close it when done."""

    status: int
    headers: list[tuple[bytes, bytes]]
    response: HttpResponse
    key_index: int
    body: bytes | None = None

    async def read(self) -> bytes:
        if self.body is None:
            self.body = await self.response.read()
        return self.body

    async def read_chunk(self) -> bytes:
        """The body's next bytes as they arrive; ``b""`` at its end."""
        return await self.response.read_chunk()

    def close(self) -> None:
        self.response.close()


def _retry_after(response: HttpResponse) -> float | None:
    value = response.header(b"retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def classify(status: int, body: bytes) -> Outcome | None:
    """The key's fault class for a non-200 answer, or None when the answer goes to the client."""
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status in (401, 403) or (status == 400 and _CREDIT_TOO_LOW in body.lower()):
        return "key_rejected"
    return None


class Upstream:
    def __init__(
        self,
        pool: UpstreamPool,
        metrics: Metrics,
        *,
        attempts: int,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.pool = pool
        self._metrics = metrics
        self._attempts = attempts
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._http: HttpClient | None = None

    async def start(self) -> None:
        self._http = HttpClient(
            connect_timeout_s=self._connect_timeout_s,
            read_timeout_s=self._read_timeout_s,
            keepalive_s=30.0,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(
        self, path: str, body: bytes, client_headers: Iterable[tuple[bytes, bytes]]
    ) -> UpstreamAnswer:
        """POST to the first key able to answer; raises :class:`GatewayError` when none can."""
        assert self._http is not None, "Upstream.start() first"
        headers_in = list(client_headers)
        tried: set[int] = set()
        for _ in range(self._attempts):
            index = self.pool.acquire(tried)
            if index is None:
                break
            tried.add(index)
            answer = await self._attempt(index, path, body, headers_in)
            if answer is not None:
                return answer
        raise self._refusal()

    async def _attempt(
        self, index: int, path: str, body: bytes, headers_in: list[tuple[bytes, bytes]]
    ) -> UpstreamAnswer | None:
        assert self._http is not None
        key = self.pool.key(index)
        headers = upstream_request_headers(headers_in, key.api_key)
        try:
            response = await self._http.post(key.base_url + path, body, headers)
        except (HttpClientError, ValueError) as exc:  # ValueError: a base URL that is not one
            self._fail(index, "connection_error", None, type(exc).__name__)
            return None
        raw_headers = response.headers
        if response.status == 200:
            self.pool.record(index, "ok")
            return UpstreamAnswer(200, raw_headers, response, index)
        try:
            error_body = await response.read()
        except HttpClientError as exc:
            response.close()
            self._fail(index, "connection_error", None, type(exc).__name__)
            return None
        outcome = classify(response.status, error_body)
        if outcome is None:
            self.pool.record(index, "ok")
            return UpstreamAnswer(response.status, raw_headers, response, index, error_body)
        response.close()
        self._fail(index, outcome, _retry_after(response), str(response.status))
        return None

    def _fail(self, index: int, outcome: Outcome, retry_after: float | None, detail: str) -> None:
        self.pool.record(index, outcome, retry_after)
        self._metrics.upstream_errors.labels(outcome).inc()
        label = self.pool.key(index).label
        if outcome == "key_rejected":
            # An alert: the operator must replace or top up this upstream key.
            log.error(
                "ALERT upstream key taken out of the pool",
                extra={"upstream_key": label, "detail": detail, "alert": "upstream_key_rejected"},
            )
        else:
            log.warning(
                "upstream attempt failed",
                extra={"upstream_key": label, "outcome": outcome, "detail": detail},
            )

    def _refusal(self) -> GatewayError:
        rest = self.pool.rest_remaining()
        if rest is not None:
            return GatewayError(
                529, "overloaded_error", "Every upstream is overloaded.", retry_after=rest
            )
        return GatewayError(502, "api_error", "No upstream could serve the request.")
