"""The transactional outbox relay (I/O): events committed with the change they announce, then
published to JetStream. Every service's outbox goes through :class:`Outbox`.

A service writes its events to its own ``<schema>.outbox`` table (``id bigserial``, ``event_id``,
``subject``, ``payload``; see each service's first migration) in the transaction that made them
true. The relay:

* **claims** the oldest pending rows with ``FOR UPDATE SKIP LOCKED``, so relays on several
  replicas never take the same row: each row is published by one relay at a time;
* **publishes** each with ``Nats-Msg-Id`` = its event id, so a row published again (a crash
  between publish and bookkeeping) is stored once inside the stream's duplicate window, and every
  consumer's own key per event id drops it after that;
* **bookkeeps** the rows the stream acknowledged, in the claim's transaction: deletes them, or
  (a table that keeps its history, ``keep_published``) sets ``published_at``;
* runs the table's **after-publish hook** in that same transaction (payments marks a deposit
  credited once its confirmation left), so the hook's change commits exactly with the bookkeeping;
* **never skips a row**: only the rows before the first failed publish are bookkept; that row and
  the ones after it stay for the next pass, which starts again from the same row.

A table whose consumers need the stream in the table's order whatever happens (payments: a
deposit's reversal must never overtake its confirmation) is ``ordered``: one relay at a time
publishes from it (a transaction-scoped advisory lock; the others find nothing to do), and one
event at a time, each after the previous was acknowledged. Other tables pipeline a batch (sent
in order on one connection, acknowledged together) and let every replica's relay work at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from aiapi_shared.bus import Bus
from aiapi_shared.lifecycle import unless_stopped

log = logging.getLogger("aiapi.outbox")

Conn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    subject: str
    payload: bytes


AfterPublish = Callable[[Conn, list[OutboxRow]], Awaitable[None]]

# The longest wait between two polls of a table found empty again and again.
IDLE_POLL_S = 10.0


class IdleBackoff:
    """How long a poll loop waits before its next pass: ``poll_s`` after a pass that found work
    (for the relay: rows nobody announced, or a failure), twice as long after each pass that
    found none, up to ``idle_s``. The rows a process commits
    wake its own relay at once; the poll is only the safety net for rows nobody announced (a
    crashed replica's), so an idle service need not query PostgreSQL several times a second."""

    def __init__(self, poll_s: float, idle_s: float = IDLE_POLL_S) -> None:
        self._poll_s = poll_s
        self._idle_s = max(poll_s, idle_s)
        self._wait_s = poll_s

    def after(self, found_work: bool) -> float:
        """The wait before the next pass, after a pass that did (not) find work."""
        if found_work:
            self._wait_s = self._poll_s
        else:
            self._wait_s = min(self._idle_s, self._wait_s * 2)
        return self._wait_s


@dataclass(frozen=True)
class OutboxTable:
    """Where a service's outbox is and how it is kept."""

    schema: str
    table: str = "outbox"
    keep_published: bool = False  # True: set ``published_at`` rather than delete the row
    ordered: bool = False  # True: one relay and one publish at a time (see the module's doc)

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def lock_id(self) -> int:
        digest = hashlib.sha256(f"aiapi:outbox:{self.schema}.{self.table}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1


class Outbox:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        bus: Bus,
        table: OutboxTable,
        *,
        after_publish: AfterPublish | None = None,
        batch: int = 256,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._table = table
        self._after_publish = after_publish
        self._batch = batch
        self._publish_timeout_s = publish_timeout_s
        self._wake = asyncio.Event()
        pending = sql.SQL(" WHERE published_at IS NULL") if table.keep_published else sql.SQL("")
        self._claim = sql.SQL(
            "SELECT id, event_id, subject, payload FROM {}{} ORDER BY id LIMIT %s"
            " FOR UPDATE SKIP LOCKED"
        ).format(table.identifier, pending)
        if table.keep_published:
            self._done = sql.SQL("UPDATE {} SET published_at = now() WHERE id = ANY(%s)").format(
                table.identifier
            )
        else:
            self._done = sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(table.identifier)

    def wake(self) -> None:
        """New rows were committed: relay them now rather than at the next poll."""
        self._wake.set()

    async def run(
        self, stop: asyncio.Event, *, poll_s: float = 1.0, idle_poll_s: float = IDLE_POLL_S
    ) -> None:
        """Relay until ``stop``; an outage (NATS, PostgreSQL) pauses it, never ends it. A
        :meth:`wake` starts a pass at once; otherwise the table is polled (:class:`IdleBackoff`;
        what a woken pass relayed was announced, so it does not shorten the poll)."""
        backoff = IdleBackoff(poll_s, idle_poll_s)
        woken = False
        while not stop.is_set():
            self._wake.clear()  # before the pass: rows committed during it wake the next one
            try:
                moved = await self.drain()
            except Exception as exc:  # noqa: BLE001 (the rows stay; the next pass retries)
                # The type only: a driver's message may carry a connection string.
                log.warning("outbox %s paused: %s", self._table.schema, type(exc).__name__)
                moved = -1  # retried at the short poll
                await asyncio.sleep(1.0)
            if moved > 0:
                log.debug("outbox %s: published %d event(s)", self._table.schema, moved)
            # Rows found by a pass a wake started were announced: the poll is for rows nobody
            # announces (a crashed replica's), so only a poll that found some, or a failed pass,
            # brings it back to ``poll_s``. Else each commit's pass was followed by an empty one
            # ``poll_s`` later: a transaction for nothing per batch at light traffic.
            unannounced = moved < 0 or (moved > 0 and not woken)
            # A stop ends the wait at once (else a stopping service waited out the poll, up to
            # ``idle_poll_s``, before it could close its NATS connection).
            wait = asyncio.wait_for(self._wake.wait(), timeout=backoff.after(unannounced))
            try:
                woken = await unless_stopped(wait, stop) is not None
            except TimeoutError:
                woken = False

    async def drain(self) -> int:
        """Relay passes until the table has nothing pending; returns how many rows left.
        Raises what stopped it (the rows from the failed one on stay for the next pass)."""
        total = 0
        while True:
            moved, full = await self.relay_once()
            total += moved
            if not full:
                return total

    async def relay_once(self) -> tuple[int, bool]:
        """One pass over at most a batch: (rows published, whether the batch was full)."""
        failure: BaseException | None = None
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            if self._table.ordered:
                cur = await conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (self._table.lock_id,)
                )
                locked = await cur.fetchone()
                if not locked or not locked[0]:
                    return 0, False  # another relay is at it; it takes every pending row
            cur = await conn.execute(self._claim, (self._batch,))
            rows = [
                OutboxRow(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]))
                for r in await cur.fetchall()
            ]
            if not rows:
                return 0, False
            published, failure = await self._publish(rows)
            if published:
                await conn.execute(self._done, ([row.id for row in published],))
                if self._after_publish is not None:
                    await self._after_publish(conn, published)
        if failure is not None:
            raise failure
        return len(rows), len(rows) == self._batch

    async def _publish(self, rows: list[OutboxRow]) -> tuple[list[OutboxRow], BaseException | None]:
        """The rows published before the first failure, and that failure (or None)."""
        if self._table.ordered:
            for i, row in enumerate(rows):
                try:
                    await self._send(row)
                except Exception as exc:  # noqa: BLE001 (returned: the prefix is still bookkept)
                    return rows[:i], exc
            return rows, None
        # Together, their acks on one reply subscription (no request and timer per row).
        messages = [(row.event_id, row.subject, row.payload) for row in rows]
        outcomes = await self._bus.publish_batch(messages, timeout_s=self._publish_timeout_s)
        for i, failure in enumerate(outcomes):
            if failure is not None:
                return rows[:i], failure
        return rows, None

    async def _send(self, row: OutboxRow) -> None:
        await self._bus.publish(row.subject, row.payload, row.event_id, self._publish_timeout_s)
