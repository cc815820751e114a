"""After-commit delivery: outbox events to JetStream, queued key records to KV.

Both queues are filled inside the transaction that made the change, so nothing is lost when the
process dies between the commit and the delivery: the next drain (here or on another replica;
rows are claimed with SKIP LOCKED) delivers it. The events go through the shared relay
(:mod:`aiapi_shared.outbox`: ``accounts.outbox``, rows deleted once published). Requests that
must take effect quickly (revocation, suspension) wait for one drain with :meth:`Relay.settle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiapi_shared.bus import Bus, KeyValue
from aiapi_shared.outbox import Outbox, OutboxTable
from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import keysync, repository
from aiapi_accounts.catalogue_view import CatalogueView

log = logging.getLogger("aiapi.accounts.relay")

_BATCH = 100
OUTBOX = OutboxTable("accounts")


class Relay:
    def __init__(
        self, pool: AsyncConnectionPool, bus: Bus, kv: KeyValue, catalogue: CatalogueView
    ) -> None:
        self._pool = pool
        self._outbox = Outbox(pool, bus, OUTBOX, batch=_BATCH)
        self._kv = kv
        self._catalogue = catalogue
        self._wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._requested = 0
        self._completed = 0

    def kick(self) -> int:
        """Ask for a drain soon; returns a ticket that :meth:`settle` can wait for."""
        self._requested += 1
        self._wake.set()
        return self._requested

    async def settle(self, timeout_s: float = 2.0) -> bool:
        """Wait until a drain that began after this call has finished (False on timeout; the
        background loop keeps retrying, so the change still lands once NATS is back)."""
        ticket = self.kick()
        try:
            async with asyncio.timeout(timeout_s), self._done:
                await self._done.wait_for(lambda: self._completed >= ticket)
        except TimeoutError:
            log.warning("relay did not settle in time; it keeps retrying")
            return False
        return True

    async def run(self, stop: asyncio.Event, *, poll_s: float = 1.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_s)
            self._wake.clear()
            ticket = self._requested
            try:
                await self.drain()
            except Exception as exc:  # noqa: BLE001 (any outage: keep the rows, retry on the next poll)
                log.warning("relay drain failed: %s", type(exc).__name__)
                continue
            async with self._done:
                self._completed = max(self._completed, ticket)
                self._done.notify_all()

    async def drain(self) -> None:
        while await self._drain_key_syncs() == _BATCH:
            pass
        await self._outbox.drain()

    async def _drain_key_syncs(self) -> int:
        async with self._pool.connection() as conn:
            rows = await repository.claim_key_syncs(conn, _BATCH)
            queued = [(account_id, key_hash) for _, account_id, key_hash in rows]
            await keysync.write_queued(self._kv, conn, queued, self._catalogue.current)
            if rows:
                await repository.delete_key_syncs(conn, [row_id for row_id, *_ in rows])
        return len(rows)
