"""Calling the upstream: pooled keep-alive connections, retries before any byte has reached
the client, and the key's health recorded by error class (see :mod:`.pool`, :mod:`.verdict`).

Only the answer's status and structured error decide a retry: the body of a successful answer is
the route's to stream. An upstream 4xx about the customer's own request is returned as is.
A failure that is about a key (5xx, connection, 401/402/403, a spend cap) is retried on another
key, up to ``attempts``; a 429 rests its key and the request moves on; a 529 (busy for everyone)
is retried on the next key after a wait (:mod:`.backoff`). When every key rests, the request
waits for the first one back if its wait budget allows.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from aiapi_shared.errors import Problem

from aiapi_edge.backoff import WaitBudget
from aiapi_edge.errors import GatewayError
from aiapi_edge.headers import upstream_request_headers
from aiapi_edge.http_client import HttpClient, HttpClientError, HttpResponse
from aiapi_edge.metrics import Metrics
from aiapi_edge.pool import Outcome, UpstreamPool
from aiapi_edge.settings import UpstreamKey
from aiapi_edge.verdict import classify

log = logging.getLogger("aiapi.edge.upstream")


@dataclass(slots=True)
class UpstreamAnswer:
    """An upstream response whose status is final (no more retries). Close it when done."""

    status: int
    headers: list[tuple[bytes, bytes]]
    response: HttpResponse
    key_index: int  # the key's slot in the pool (:mod:`.pool`)
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
    """The answer's ``retry-after`` in seconds; None when absent, not a number or not positive
    (a zero would let a retry loop spin without waiting)."""
    value = response.header(b"retry-after")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < math.inf else None


@dataclass(frozen=True, slots=True)
class _Failed:
    """An attempt that did not give the final answer."""

    outcome: Outcome
    retry_after: float | None


class Upstream:
    def __init__(
        self,
        pool: UpstreamPool,
        metrics: Metrics,
        *,
        attempts: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        wait_budget_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self._metrics = metrics
        self._attempts = attempts
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._wait_budget_s = wait_budget_s
        self._random = rng or random.Random()
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
        self,
        path: str,
        body: bytes,
        client_headers: Iterable[tuple[bytes, bytes]],
        *,
        verdicts: bool = True,
        conversation: str | None = None,
        model: str | None = None,
    ) -> UpstreamAnswer:
        """POST to the first key able to answer; raises :class:`GatewayError` when none can.

        ``verdicts=False`` (``count_tokens``): the answers change no key's health (a free route
        must not rest keys that paying traffic needs), and only healthy keys are used.
        ``conversation``: route by it (:mod:`.affinity`) rather than round-robin. ``model``:
        only keys that serve it (an operator's key may be limited to some models)."""
        assert self._http is not None, "Upstream.start() first"
        headers_in = list(client_headers)
        tried: set[int] = set()
        budget = WaitBudget(self._wait_budget_s, self._random)
        rate_limited: float | None = None  # the shortest retry-after of this request's 429s
        attempts = 0
        while attempts < self._attempts:
            index = self.pool.acquire(tried, probe=verdicts, conversation=conversation, model=model)
            if index is None:
                rest = self.pool.rest_remaining()
                if rest is None or not budget.take(rest):
                    break
                await asyncio.sleep(rest)  # every key rests, the first is back within budget
                continue
            result = await self._attempt(index, path, body, headers_in, verdicts)
            if isinstance(result, UpstreamAnswer):
                return result
            if result.outcome == "overloaded":
                wait = result.retry_after if result.retry_after is not None else budget.backoff()
                if not budget.take(wait):
                    raise GatewayError(
                        Problem.OVERLOADED, "The upstream API is overloaded.", retry_after=wait
                    )
                await asyncio.sleep(wait)
                continue  # a 529 spends the wait budget, not an attempt
            attempts += 1
            if result.outcome == "rate_limited":
                after = result.retry_after or 1.0
                rate_limited = after if rate_limited is None else min(rate_limited, after)
                if verdicts:
                    continue  # the key rests; it may serve again within the wait budget
            tried.add(index)
        raise self._refusal(rate_limited)

    async def call_key(
        self,
        fingerprint: str,
        method: str,
        path: str,
        client_headers: Iterable[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> UpstreamAnswer:
        """One call through the pool key with this fingerprint, whatever its health and without
        retries on another key: a Message Batch lives in the organisation of the key that
        created it, and no other key can read it."""
        assert self._http is not None, "Upstream.start() first"
        index = self.pool.find(fingerprint)
        if index is None:
            raise GatewayError(
                Problem.BAD_GATEWAY, "The upstream key that created this batch is not configured."
            )
        key = self.pool.key(index)
        headers = upstream_request_headers(list(client_headers), key.api_key)
        try:
            response = await self._http.request(method, key.base_url + path, body, headers)
        except (HttpClientError, ValueError) as exc:
            self._metrics.upstream_errors.labels("connection_error").inc()
            raise GatewayError(Problem.BAD_GATEWAY, "The upstream could not be reached.") from exc
        return UpstreamAnswer(response.status, response.headers, response, index)

    async def _attempt(
        self,
        index: int,
        path: str,
        body: bytes,
        headers_in: list[tuple[bytes, bytes]],
        verdicts: bool,
    ) -> UpstreamAnswer | _Failed:
        assert self._http is not None
        key = self.pool.key(index)  # read now: the key may leave the pool during the attempt
        self.pool.attempted(index)
        headers = upstream_request_headers(headers_in, key.api_key)
        try:
            response = await self._http.post(key.base_url + path, body, headers)
        except (HttpClientError, ValueError) as exc:  # ValueError: a base URL that is not one
            return self._fail(index, key, "connection_error", None, type(exc).__name__, verdicts)
        raw_headers = response.headers
        if response.status == 200:
            if verdicts:
                self.pool.record(index, "ok")
            return UpstreamAnswer(200, raw_headers, response, index)
        try:
            error_body = await response.read()
        except HttpClientError as exc:
            response.close()
            return self._fail(index, key, "connection_error", None, type(exc).__name__, verdicts)
        outcome = classify(response.status, error_body)
        if outcome is None:
            self._metrics.upstream_client_errors.labels(str(response.status)).inc()
            if verdicts:
                self.pool.record(index, "ok")
            return UpstreamAnswer(response.status, raw_headers, response, index, error_body)
        response.close()
        retry_after = _retry_after(response)
        return self._fail(index, key, outcome, retry_after, str(response.status), verdicts)

    def _fail(
        self,
        index: int,
        key: UpstreamKey,
        outcome: Outcome,
        retry_after: float | None,
        detail: str,
        verdicts: bool,
    ) -> _Failed:
        self._metrics.upstream_errors.labels(outcome).inc()
        label = key.label
        if verdicts:
            self.pool.record(index, outcome, retry_after, detail)
        if verdicts and outcome == "key_rejected":
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
        return _Failed(outcome, retry_after)

    async def probe(self, key: UpstreamKey, path: str, body: bytes) -> tuple[int, bytes]:
        """One request through ``key`` alone, outside the pool (the operator's test): no retry,
        no verdict on its health. Raises :class:`HttpClientError` when no answer came."""
        assert self._http is not None, "Upstream.start() first"
        headers = upstream_request_headers((), key.api_key)
        response = await self._http.post(key.base_url + path, body, headers)
        try:
            return response.status, await response.read()
        finally:
            response.close()

    def _refusal(self, rate_limited: float | None) -> GatewayError:
        rest = self.pool.rest_remaining()
        if rest is None:
            rest = rate_limited
        if rest is not None:
            return GatewayError(
                Problem.OVERLOADED, "Every upstream is overloaded.", retry_after=rest
            )
        return GatewayError(Problem.BAD_GATEWAY, "No upstream could serve the request.")
