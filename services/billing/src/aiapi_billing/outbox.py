"""The balance snapshot writer, and billing's outbox (relayed by :mod:`aiapi_shared.outbox`).

Events are written to ``billing.outbox`` in the transaction that made them true; the shared relay
publishes them with ``Nats-Msg-Id`` = event id and deletes them once the stream acknowledged
(claimed with SKIP LOCKED: every replica's relay works at once, never on the same row).

Snapshots (KV ``aiapi_balances``) are written from the account rows themselves, newest version
wins: a put is conditional on the KV revision read, and never replaces a newer version. A
settlement hands over the totals its transaction left (``move_totals``'s ``RETURNING``: the row
as committed, at its version), so the writer need not read them back; any other change (an
admission's hold, a lease, a deposit) only marks the account, and an account marked so is read
from its row, which is at least as new as anything handed over before.

Settlement's outbox rows are handed to the relay after its commit (``Consumers.after_settle``):
published from memory, deleted by the next settlement transaction or, within ``FORGET_AFTER_S``,
by the relay; a poll only takes rows older than ``ORPHAN_AFTER_S`` (a crashed replica's), so
one replica's poll does not publish again what another relayed and has not deleted yet.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.errors import RetryableError
from aiapi_shared.events.records_v1 import BalanceSnapshot
from aiapi_shared.kv_versioned import KeyValue, put_if_newer, update_if_unchanged
from aiapi_shared.outbox import Outbox, OutboxTable
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aiapi_billing.notices import Totals

log = logging.getLogger("aiapi.billing.outbox")

OUTBOX = OutboxTable("billing")
POLL_S = 0.2
# Relayed rows wait at most this long for a settlement transaction to delete them in passing.
FORGET_AFTER_S = 2.0
# A poll takes only rows older than this: younger ones are a live replica's, in flight.
ORPHAN_AFTER_S = 10.0


def outbox_relay(pool: AsyncConnectionPool, bus: Bus) -> Outbox:
    return Outbox(pool, bus, OUTBOX, orphan_after_s=ORPHAN_AFTER_S, forget_after_s=FORGET_AFTER_S)


class SnapshotWriter:
    """Writes the balance snapshot of each account marked dirty (coalescing bursts of changes)."""

    def __init__(self, pool: AsyncConnectionPool, kv: KeyValue, *, gather_s: float = 0.1) -> None:
        self._pool = pool
        self._kv = kv
        self._gather_s = gather_s
        self._dirty: set[str] = set()  # to read from their rows
        self._settled: dict[str, Totals] = {}  # handed over: the newest version of each
        self._wake = asyncio.Event()
        # What this writer last stored per account: (KV revision, version). While the key's
        # revision is still that one, nobody else wrote since, so the next write needs no read.
        self._written: dict[str, tuple[int, int]] = {}

    def mark(self, account_id: str) -> None:
        self._dirty.add(account_id)
        self._wake.set()

    def settled(self, totals: dict[str, Totals]) -> None:
        """Accounts' totals as a committed transaction left them (at their version)."""
        for account_id, new in totals.items():
            known = self._settled.get(account_id)
            if known is None or known.version < new.version:
                self._settled[account_id] = new
        if totals:
            self._wake.set()

    async def mark_recent(self) -> None:
        """After a start, refresh the accounts that changed lately (a crash may have lost marks)."""
        async with self._pool.connection(timeout=5.0) as conn:
            cur = await conn.execute(
                "SELECT account_id FROM accounts WHERE updated_at > now() - interval '1 day'"
            )
            for (account_id,) in await cur.fetchall():
                self.mark(str(account_id))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Asleep until a mark or the stop (an idle billing does not wake for nothing).
            await _either(self._wake, stop)
            self._wake.clear()
            if not self._dirty and not self._settled:
                continue
            # Let a burst of changes (one per admission) gather: one write per account for all.
            await asyncio.sleep(self._gather_s)
            batch, self._dirty = self._dirty, set()
            settled, self._settled = self._settled, {}
            try:
                await self.write(sorted(batch), settled)
            except (
                OperationalError,
                PoolTimeout,
                BusUnavailable,
                RetryableError,
                TimeoutError,
            ) as exc:
                log.warning("snapshot writer paused: %s", type(exc).__name__)
                self._dirty |= batch | settled.keys()  # read again: at least as new
                await asyncio.sleep(1.0)
                # Tried again now, not at the next change: an account that does not change
                # again would keep its old snapshot in the edges' mirrors until it did.
                self._wake.set()

    async def write(self, account_ids: list[str], settled: dict[str, Totals] | None = None) -> None:
        """Write the snapshots of ``account_ids`` (read from their rows) and of the accounts in
        ``settled`` that are not among them (from the totals handed over: a mark since means a
        change after them, so such an account is read instead)."""
        read = set(account_ids)
        totals = {a: t for a, t in (settled or {}).items() if a not in read}
        if account_ids:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(
                    "SELECT account_id, credits, debits, holds, version"
                    " FROM accounts WHERE account_id = ANY(%s)",
                    (account_ids,),
                )
                for a, c, d, h, v in await cur.fetchall():
                    totals[str(a)] = Totals(int(c), int(d), int(h), int(v))
        now = datetime.now(UTC)
        await asyncio.gather(
            *(
                self._put(
                    BalanceSnapshot(
                        account_id=a,
                        balance=t.balance,
                        available=t.available,
                        version=t.version,
                        as_of=now,
                    )
                )
                for a, t in totals.items()
            )
        )

    async def _put(self, snapshot: BalanceSnapshot) -> None:
        """One conditional write on the revision this writer last stored; if another writer
        (a replica) got in between, the read-compare-write of :func:`put_snapshot` decides."""
        key = snapshot.account_id
        known = self._written.get(key)
        if known is not None and known[1] >= snapshot.version:
            return
        payload = snapshot.model_dump_json().encode()
        if known is not None:
            revision = await update_if_unchanged(self._kv, key, payload, revision=known[0])
            if revision is not None:
                self._written[key] = (revision, snapshot.version)
                return
            self._written.pop(key, None)
        if await put_snapshot(self._kv, snapshot):
            entry = await self._kv.get(key)
            self._written[key] = (entry.revision or 0, snapshot.version)


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _snapshot_version(value: bytes) -> int:
    return BalanceSnapshot.model_validate_json(value).version


async def put_snapshot(kv: KeyValue, snapshot: BalanceSnapshot) -> bool:
    """Store ``snapshot`` unless the bucket already holds the same or a newer version."""
    return await put_if_newer(
        kv,
        snapshot.account_id,
        snapshot.model_dump_json().encode(),
        version=snapshot.version,
        version_of=_snapshot_version,
    )
