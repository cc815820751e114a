"""Driving Message Batches to their end: a look at the upstream, and settlement once it ended.

Each edge replica runs a tracker. Every ``tick_s`` it asks billing for batches due a look that
one of its own upstream keys created (a batch lives in that key's organisation), leased to it
for ``lease_s`` so that replicas share the work; billing keeps the batches, so a restarted edge,
or another replica, picks up where one stopped. A batch still processing gets its latest object
recorded and its next look ``poll_s`` later; a batch that ended has its results read (streamed,
a line at a time) and settled in chunks, the last of which releases the hold. Settlement is
idempotent in billing, so a look that overlaps another (the customer's own retrieve, a replica
whose lease ran out) never bills twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiapi_shared import batches_api as api
from pydantic import ValidationError

from aiapi_edge.batch_billing import BatchBilling
from aiapi_edge.batch_form import read_result
from aiapi_edge.errors import GatewayError, upstream_failed
from aiapi_edge.http_client import HttpClientError
from aiapi_edge.upstream import Upstream, UpstreamAnswer

log = logging.getLogger("aiapi.edge.batches")


class UpstreamAnswered(Exception):
    """The upstream refused a batch call; its status and body go back to the customer."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = headers


# What a look at one batch may fail with; the batch is looked at again later, nothing is lost.
LOOK_FAILURES = (GatewayError, UpstreamAnswered, HttpClientError, ValidationError)


async def read_object(answer: UpstreamAnswer) -> dict[str, Any]:
    """The answer's JSON object, or :class:`UpstreamAnswered` when it is not a success."""
    try:
        data = await answer.read()
    finally:
        answer.close()
    if answer.status != 200:
        raise UpstreamAnswered(answer.status, data, answer.headers)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise upstream_failed("The upstream sent an unreadable batch.")
    return parsed


class BatchTracker:
    def __init__(
        self,
        billing: BatchBilling,
        upstream: Upstream,
        *,
        edge_id: str,
        tick_s: float,
        poll_s: float,
        lease_s: float,
        chunk: int = 1000,
    ) -> None:
        self.chunk = chunk  # results per settle message (requests per open message: the route)
        self._billing = billing
        self._upstream = upstream
        self._edge_id = edge_id
        self._tick_s = tick_s
        self._poll_s = poll_s
        self._lease_s = lease_s

    def path(self, record: api.BatchRecord, action: str = "") -> str:
        suffix = f"/{action}" if action else ""
        return f"/v1/messages/batches/{record.upstream_id}{suffix}"

    async def call(
        self,
        record: api.BatchRecord,
        method: str,
        action: str = "",
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> UpstreamAnswer:
        """A call about this batch, through the key that created it."""
        return await self._upstream.call_key(
            record.upstream_key, method, self.path(record, action), headers
        )

    async def look(
        self, record: api.BatchRecord, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> dict[str, Any]:
        """The upstream's batch object now; a batch that ended is settled before the answer
        (a settlement that fails is left to the trackers: the answer is not withheld)."""
        snapshot = await read_object(await self.call(record, "GET", headers=headers))
        try:
            await self.observe(record, snapshot)
        except LOOK_FAILURES as exc:
            log.warning(
                "batch not settled yet", extra={"batch_id": record.batch_id, "detail": str(exc)}
            )
        return snapshot

    async def observe(self, record: api.BatchRecord, snapshot: dict[str, Any]) -> None:
        """Record what the upstream said of a batch billing still tracks."""
        if record.state != "in_progress":
            return
        if snapshot.get("processing_status") == "ended":
            await self.settle(record, snapshot)
        else:
            await self._billing.update(
                api.BatchUpdateCommand(
                    batch_id=record.batch_id, snapshot=snapshot, next_poll_s=self._poll_s
                )
            )

    async def settle(self, record: api.BatchRecord, snapshot: dict[str, Any]) -> None:
        answer = await self.call(record, "GET", "results")
        if answer.status != 200:
            await read_object(answer)  # raises with the upstream's refusal
        chunk: list[api.BatchItemResult] = []
        pending = b""
        try:
            while data := await answer.read_chunk():
                *lines, pending = (pending + data).split(b"\n")
                chunk.extend(r for r in map(read_result, lines) if r is not None)
                if len(chunk) >= self.chunk:
                    await self._settle(record, snapshot, chunk, final=False)
                    chunk = []
        finally:
            answer.close()
        last = read_result(pending) if pending.strip() else None
        if last is not None:
            chunk.append(last)
        await self._settle(record, snapshot, chunk, final=True)

    async def _settle(
        self,
        record: api.BatchRecord,
        snapshot: dict[str, Any],
        results: list[api.BatchItemResult],
        *,
        final: bool,
    ) -> None:
        reply = await self._billing.settle(
            api.BatchSettleCommand(
                batch_id=record.batch_id, snapshot=snapshot, results=results, final=final
            )
        )
        if final and not reply.already_settled:
            log.info(
                "batch settled",
                extra={"batch_id": record.batch_id, "items": reply.billed_items},
            )

    async def tick(self) -> int:
        """One round: claim the due batches this edge can read and look at each; how many."""
        keys = self._upstream.pool.fingerprints()
        if not keys:
            return 0
        claimed = await self._billing.claim(
            api.BatchClaimCommand(edge_id=self._edge_id, upstream_keys=keys, lease_s=self._lease_s)
        )
        for record in claimed.data:
            try:
                await self.look(record)
            except LOOK_FAILURES as exc:
                # The lease runs out and the batch is looked at again; nothing is lost.
                log.warning(
                    "batch look failed", extra={"batch_id": record.batch_id, "detail": str(exc)}
                )
        return len(claimed.data)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except GatewayError as exc:  # billing unreachable: try again next tick
                log.warning("batch tracker round failed", extra={"detail": exc.message})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick_s)
