"""The edge's side of the operator's view of the pool: its status report and the key test.

Every ``AIAPI_EDGE_UPSTREAM_REPORT_S`` the edge looks at its :class:`UpstreamStatusReport` and
writes it under its id in the ``aiapi_upstream_status`` bucket when it changed, or at least every
:data:`HEARTBEAT_S` (well within the bucket's time to live, after which the operator API counts
the edge gone) so that an idle edge costs NATS and accounts' watch one write in ten seconds: each key's health and what it served since this edge
started (requests, errors by class with the last few, tokens, cost at list price); the operator
API adds the edges' reports up. A key the operator disabled or removed, known from the setting, is
reported too (``health`` "off"), so the API lists it.

The test (``rpc.edge.v1.upstream_key.test``, answered by one edge) sends the smallest request
through one key, whether or not it serves, and reports the status and the error's type, never the
upstream's message or the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

import orjson
from aiapi_shared.bus import Bus, KeyValue
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.edge_api import UpstreamTestQuery, UpstreamTestReply
from aiapi_shared.events.base import utc_now
from aiapi_shared.events.records_v1 import (
    UPSTREAM_STATUS_BUCKET,
    UPSTREAM_STATUS_TTL_S,
    UpstreamError,
    UpstreamKeyStatus,
    UpstreamStatusReport,
)
from pydantic import ValidationError

from aiapi_edge.http_client import HttpClientError
from aiapi_edge.pool import KeyView
from aiapi_edge.settings import UpstreamKey
from aiapi_edge.upstream import Upstream
from aiapi_edge.upstream_keys import UpstreamKeys
from aiapi_edge.verdict import classify, error_fields

log = logging.getLogger("aiapi.edge.upstream_status")

_PREFERRED_TEST_MODEL = "claude-haiku-4-5"
# An unchanged report is rewritten this often: a third of the time to live, so one lost write
# does not make a live edge look gone.
HEARTBEAT_S = UPSTREAM_STATUS_TTL_S / 3


def key_status(key: UpstreamKey, health: str, view: KeyView | None) -> UpstreamKeyStatus:
    counters = view.counters if view is not None else None
    tokens = counters.tokens if counters is not None else {}
    return UpstreamKeyStatus(
        id=key.key_id,
        source="operator" if key.source == "operator" else "env",
        hint=key.label,
        base_url=key.base_url,
        organization=key.organisation,
        weight=key.weight,
        models=key.models,
        health=health,
        requests=counters.requests if counters is not None else 0,
        errors=dict(counters.errors) if counters is not None else {},
        input_tokens=tokens.get("input_tokens", 0),
        output_tokens=tokens.get("output_tokens", 0),
        cache_read_input_tokens=tokens.get("cache_read_input_tokens", 0),
        cache_creation_input_tokens=tokens.get("cache_creation_5m_input_tokens", 0)
        + tokens.get("cache_creation_1h_input_tokens", 0),
        list_cost=counters.list_cost_nano if counters is not None else 0,
        recent_errors=tuple(
            UpstreamError(at=at, outcome=outcome, detail=detail)
            for at, outcome, detail in (counters.recent_errors if counters is not None else ())
        ),
    )


def build_report(
    edge_id: str,
    started_at: datetime,
    views: list[KeyView],
    idle_env_keys: list[UpstreamKey],
) -> UpstreamStatusReport:
    keys = [key_status(view.key, view.health, view) for view in views]
    keys += [key_status(key, "off", None) for key in idle_env_keys]
    return UpstreamStatusReport(
        edge_id=edge_id, reported_at=utc_now(), started_at=started_at, keys=tuple(keys)
    )


def test_model(key: UpstreamKey, catalogue: Catalogue, asked: str | None) -> str:
    if asked:
        return asked
    if key.models:
        return key.models[0]
    ids = [model.id for model in catalogue.models]
    return _PREFERRED_TEST_MODEL if _PREFERRED_TEST_MODEL in ids or not ids else ids[0]


class UpstreamStatus:
    """Writes this edge's report periodically and answers the operator's key test."""

    def __init__(
        self,
        bus: Bus,
        upstream: Upstream,
        keys: UpstreamKeys,
        catalogue: Callable[[], Catalogue],
        *,
        edge_id: str,
        every_s: float,
    ) -> None:
        self._bus = bus
        self._upstream = upstream
        self._keys = keys
        self._catalogue = catalogue
        self._edge_id = edge_id
        self._every_s = every_s
        self._started_at = utc_now()

    def report(self) -> UpstreamStatusReport:
        serving = {key.key_id for key in self._upstream.pool.serving()}
        idle = [k for k in self._keys.env_keys() if k.key_id not in serving]
        return build_report(self._edge_id, self._started_at, self._upstream.pool.views(), idle)

    async def run(self, stop: asyncio.Event) -> None:
        kv: KeyValue | None = None
        loop = asyncio.get_running_loop()
        written: tuple[UpstreamKeyStatus, ...] | None = None  # the keys last written
        written_at = 0.0
        while not stop.is_set():
            report = self.report()
            if report.keys != written or loop.time() - written_at >= HEARTBEAT_S:
                try:
                    kv = kv or await self._bus.ensure_kv(UPSTREAM_STATUS_BUCKET)
                    await kv.put(self._edge_id, report.model_dump_json().encode())
                    written, written_at = report.keys, loop.time()
                except Exception as exc:  # noqa: BLE001 (best effort; the next one follows)
                    log.warning("upstream status report not written: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every_s)

    async def test(self, raw: bytes) -> bytes:
        try:
            query = UpstreamTestQuery.model_validate_json(raw)
        except ValidationError:
            return b'{"error":"invalid"}'
        return (await self._test(query)).model_dump_json().encode()

    async def _test(self, query: UpstreamTestQuery) -> UpstreamTestReply:
        key = self._keys.find(query.key_id)
        if key is None:
            return UpstreamTestReply(
                key_id=query.key_id, edge_id=self._edge_id, found=False, outcome="not_found"
            )
        model = test_model(key, self._catalogue(), query.model)
        body = orjson.dumps(
            {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
        )
        started = time.perf_counter()
        try:
            status, answer = await self._upstream.probe(key, "/v1/messages", body)
        except (HttpClientError, ValueError) as exc:
            log.warning("upstream key test: no answer (%s)", type(exc).__name__)
            return UpstreamTestReply(
                key_id=key.key_id,
                edge_id=self._edge_id,
                found=True,
                outcome="connection_error",
                model=model,
            )
        latency_ms = int((time.perf_counter() - started) * 1000)
        verdict = "ok" if status == 200 else (classify(status, answer) or "client_error")
        return UpstreamTestReply(
            key_id=key.key_id,
            edge_id=self._edge_id,
            found=True,
            ok=status == 200,
            status=status,
            outcome=verdict,
            model=model,
            latency_ms=latency_ms,
            error_type=None if status == 200 else error_fields(answer)[0],
        )
