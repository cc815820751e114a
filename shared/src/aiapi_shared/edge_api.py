"""The edges' request/reply API on NATS, for accounts (the operator API).

``rpc.edge.v1.upstream_key.test``: one edge (queue group) sends a minimal request through the
named upstream key (enabled or not) and says what came back. Accounts cannot do it itself: it
holds no upstream key in clear (:mod:`aiapi_shared.upstream_seal`).
"""

from __future__ import annotations

from pydantic import Field

from aiapi_shared.events.base import Record

UPSTREAM_TEST_SUBJECT = "rpc.edge.v1.upstream_key.test"


class UpstreamTestQuery(Record):
    key_id: str = Field(min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=128)  # None: the key's first, else a default


class UpstreamTestReply(Record):
    key_id: str
    edge_id: str
    found: bool
    ok: bool = False
    status: int | None = None  # the upstream's HTTP status; None: no answer (connection)
    outcome: str  # "ok", a key verdict (:mod:`aiapi_edge.verdict`), "client_error" or "not_found"
    model: str | None = None
    latency_ms: int | None = None
    error_type: str | None = None  # the upstream's ``error.type``, never its message
