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

A process that has just committed rows may **hand them over** (:meth:`Outbox.hand_over`, billing's
settlement): the relay publishes them from memory, without a transaction to read them back, and
remembers them as relayed until their rows are bookkept, which the process's next transaction of
the same kind does in passing (:meth:`Outbox.bookkeep_relayed`) or, if none comes within
``forget_after_s``, the relay alone. The table stays the durable source: a crash between the
commit and the publish, or between the publish and the bookkeeping, leaves the rows for the next
pass, here or on another replica, and the stream stores a row published twice once (its
``Nats-Msg-Id``). So that another replica's poll does not publish, again and again, the rows a
busy process relayed but has not bookkept yet, a poll only takes rows older than
``orphan_after_s``; a pass a commit announced (:meth:`Outbox.wake`) and the first pass after a
start take every pending row.

A table whose consumers need the stream in the table's order whatever happens (payments: a
deposit's reversal must never overtake its confirmation) is ``ordered``: one relay at a time
publishes from it (a transaction-scoped advisory lock; the others find nothing to do), and one
event at a time, each after the previous was acknowledged. Other tables pipeline a batch (sent
in order on one connection, acknowledged together) and let every replica's relay work at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
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
# A timer may fire this much before its deadline: the pass it was set for is due.
_EARLY_S = 0.005


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


def id_array(ids: Iterable[int]) -> str:
    """Row ids as one ``bigint[]`` literal: psycopg dumps a list element by element in Python
    (microseconds each); this is one string PostgreSQL parses."""
    return "{" + ",".join(str(i) for i in ids) + "}"


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
        orphan_after_s: float = 0.0,
        forget_after_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._table = table
        self._after_publish = after_publish
        self._batch = batch
        self._publish_timeout_s = publish_timeout_s
        self._orphan_after_s = orphan_after_s
        self._forget_after_s = forget_after_s
        self._wake = asyncio.Event()
        self._announced = False  # a wake() since the last full pass
        self._handed: list[OutboxRow] = []  # committed here, to publish from memory
        # Published (the stream acknowledged them) but their rows not yet bookkept, and when the
        # relay bookkeeps them itself if no caller's transaction did (loop time).
        self._relayed: set[int] = set()
        self._forget_at = 0.0
        pending = sql.SQL(" WHERE published_at IS NULL") if table.keep_published else sql.SQL("")
        claim = "SELECT id, event_id, subject, payload FROM {}{} ORDER BY id LIMIT %s"
        self._claim = sql.SQL(claim + " FOR UPDATE SKIP LOCKED").format(table.identifier, pending)
        orphans = sql.SQL(" AND " if table.keep_published else " WHERE ") + sql.SQL(
            "created_at < now() - make_interval(secs => %s)"
        )
        self._claim_orphans = sql.SQL(claim + " FOR UPDATE SKIP LOCKED").format(
            table.identifier, sql.Composed([pending, orphans])
        )
        if table.keep_published:
            self._done = sql.SQL(
                "UPDATE {} SET published_at = now() WHERE id = ANY(%s::bigint[])"
            ).format(table.identifier)
        else:
            self._done = sql.SQL("DELETE FROM {} WHERE id = ANY(%s::bigint[])").format(
                table.identifier
            )
        # The relayed rows nobody else holds: a row another pass claimed is bookkept by that pass
        # (or, if its transaction fails, published again by a later one: stored once).
        target = (
            sql.SQL("UPDATE {} SET published_at = now()")
            if table.keep_published
            else sql.SQL("DELETE FROM {}")
        ).format(table.identifier)
        self._forget = sql.SQL(
            "{} WHERE id IN (SELECT id FROM {} WHERE id = ANY(%s::bigint[]) FOR UPDATE SKIP LOCKED)"
        ).format(target, table.identifier)

    def wake(self) -> None:
        """New rows were committed: relay them now rather than at the next poll."""
        self._announced = True
        self._wake.set()

    def hand_over(self, rows: Sequence[OutboxRow]) -> None:
        """Rows this process has just committed: publish them from memory, in their order,
        without reading them back (see the module's doc). A table that needs the claim's
        transaction (``ordered``, or an after-publish hook) relays them by a pass as before."""
        if not rows:
            return
        if self._table.ordered or self._after_publish is not None:
            self.wake()
            return
        self._handed.extend(rows)
        self._wake.set()

    async def bookkeep_relayed(self, conn: Conn) -> list[int]:
        """Bookkeep, in the caller's transaction, the rows this relay published since; returns
        their ids, for :meth:`forgotten` once that transaction committed. A row another pass
        holds is left to it, never waited for (the caller may hold other locks): that pass
        bookkeeps it, or, should its transaction fail, a later pass publishes it again, which
        the stream stores once."""
        if not self._relayed:
            return []
        ids = sorted(self._relayed)
        await conn.execute(self._forget, (id_array(ids),))
        return ids

    def forgotten(self, ids: Iterable[int]) -> None:
        """The transaction that bookkept ``ids`` committed."""
        before = len(self._relayed)
        self._relayed.difference_update(ids)
        if self._relayed and len(self._relayed) < before:
            # Rows published since that transaction began: the next one takes them.
            self._forget_at = asyncio.get_running_loop().time() + self._forget_after_s

    @property
    def relayed(self) -> frozenset[int]:
        """The rows published from here and not bookkept yet."""
        return frozenset(self._relayed)

    async def run(
        self, stop: asyncio.Event, *, poll_s: float = 1.0, idle_poll_s: float = IDLE_POLL_S
    ) -> None:
        """Relay until ``stop``; an outage (NATS, PostgreSQL) pauses it, never ends it. Rows
        handed over are published at once, without a transaction; a :meth:`wake` starts a pass
        at once; otherwise the table is polled (:class:`IdleBackoff`; what a woken pass relayed
        was announced, so it does not shorten the poll)."""
        clock = asyncio.get_running_loop().time
        backoff = IdleBackoff(poll_s, idle_poll_s)
        full = True  # the first pass takes every pending row: a crash may have left some
        poll_at = clock()
        while not stop.is_set():
            self._wake.clear()  # before the pass: rows committed during it wake the next one
            try:
                await self._publish_handed()
                polled = not full and clock() >= poll_at - _EARLY_S
                if full or polled:
                    self._announced = False
                    moved = await self.drain(orphans_only=polled)
                    if moved > 0:
                        log.debug("outbox %s: published %d event(s)", self._table.schema, moved)
                    # Rows found by a pass a wake started were announced: the poll is for rows
                    # nobody announces (a crashed replica's), so only a poll that found some
                    # brings it back to ``poll_s``. Else each commit's pass was followed by an
                    # empty one ``poll_s`` later: a transaction for nothing per batch.
                    poll_at = clock() + backoff.after(polled and moved > 0)
                if self._relayed and clock() >= self._forget_at - _EARLY_S:
                    await self._forget_relayed()
            except Exception as exc:  # noqa: BLE001 (the rows stay; the next pass retries)
                # The type only: a driver's message may carry a connection string.
                log.warning("outbox %s paused: %s", self._table.schema, type(exc).__name__)
                self._announced = True  # retried with a full pass, at the short poll
                poll_at = clock() + backoff.after(True)
                await asyncio.sleep(1.0)
            if self._announced:
                full = True
                continue
            wait_s = poll_at - clock()
            if self._relayed:
                wait_s = min(wait_s, self._forget_at - clock())
            # A stop ends the wait at once (else a stopping service waited out the poll, up to
            # ``idle_poll_s``, before it could close its NATS connection).
            wait = asyncio.wait_for(self._wake.wait(), timeout=max(0.0, wait_s))
            with contextlib.suppress(TimeoutError):
                await unless_stopped(wait, stop)
            full = self._announced

    async def drain(self, *, orphans_only: bool = False) -> int:
        """Relay passes until the table has nothing pending; returns how many rows left.
        ``orphans_only``: only rows older than ``orphan_after_s`` (the poll's). Raises what
        stopped it (the rows from the failed one on stay for the next pass)."""
        total = 0
        while True:
            moved, full = await self.relay_once(orphans_only=orphans_only)
            total += moved
            if not full:
                return total

    async def relay_once(self, *, orphans_only: bool = False) -> tuple[int, bool]:
        """One pass over at most a batch: (rows published, whether the batch was full). Rows
        this relay published already (handed over) are bookkept without a second publish."""
        failure: BaseException | None = None
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            if self._table.ordered:
                cur = await conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (self._table.lock_id,)
                )
                locked = await cur.fetchone()
                if not locked or not locked[0]:
                    return 0, False  # another relay is at it; it takes every pending row
            if orphans_only and self._orphan_after_s > 0:
                cur = await conn.execute(self._claim_orphans, (self._orphan_after_s, self._batch))
            else:
                cur = await conn.execute(self._claim, (self._batch,))
            rows = [
                OutboxRow(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]))
                for r in await cur.fetchall()
            ]
            if not rows:
                return 0, False
            if self._handed:  # committed and claimed here: this pass publishes them
                claimed = {row.id for row in rows}
                self._handed = [row for row in self._handed if row.id not in claimed]
            relayed = [row for row in rows if row.id in self._relayed]
            fresh = [row for row in rows if row.id not in self._relayed]
            published, failure = await self._publish(fresh) if fresh else ([], None)
            done = [row.id for row in relayed] + [row.id for row in published]
            if done:
                await conn.execute(self._done, (id_array(done),))
                if self._after_publish is not None and published:
                    await self._after_publish(conn, published)
        self.forgotten(row.id for row in relayed)
        if failure is not None:
            raise failure
        return len(fresh), len(rows) == self._batch

    async def _publish_handed(self) -> None:
        """Publish the rows handed over, in order; the published ones wait to be bookkept. On a
        failure the rest stay in the table for a full pass (the caller retries with one)."""
        rows, self._handed = self._handed, []
        if not rows:
            return
        published, failure = await self._publish(rows)
        if published and not self._relayed:
            self._forget_at = asyncio.get_running_loop().time() + self._forget_after_s
        self._relayed.update(row.id for row in published)
        if failure is not None:
            raise failure

    async def _forget_relayed(self) -> None:
        """Bookkeep the relayed rows no caller's transaction took in ``forget_after_s``."""
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            ids = await self.bookkeep_relayed(conn)
        self.forgotten(ids)

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
