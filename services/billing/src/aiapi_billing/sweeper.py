"""Expiry of holds that were never settled (an edge crashed mid-request), and of leases.

Expiring a hold gives its amount back to ``available``; a usage event that arrives later still
bills in full (settlement finds no open hold to release and debits anyway). A lease (open or
closed) expires the same way ``hold_ttl`` after its admission window: whatever it still holds goes
back, and its late usage events bill in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aiapi_billing.notices import balance_events
from aiapi_billing.repository import accounts, holds, leases, outbox

log = logging.getLogger("aiapi.billing.sweeper")


class HoldSweeper:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        low_threshold: int,
        on_change: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._pool = pool
        self._low = low_threshold
        self._on_change = on_change

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except (OperationalError, PoolTimeout) as exc:
                log.warning("hold sweeper paused: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    async def sweep_once(self, limit: int = 500) -> int:
        """Expire overdue holds and leases, one account per transaction (account row locked
        first, then its holds and leases); returns how many expired."""
        async with self._pool.connection(timeout=5.0) as conn:
            overdue = await holds.accounts_overdue(conn, limit)
            await conn.commit()
            expired = 0
            for account_id in overdue:
                async with conn.transaction():
                    account = await accounts.lock_account(conn, account_id)
                    amounts = await holds.expire_holds(conn, account_id)
                    amounts += await leases.expire_leases(conn, account_id)
                    if not amounts:
                        continue
                    after = await accounts.apply_totals(conn, account_id, hold_delta=-sum(amounts))
                    await outbox.queue_events(
                        conn,
                        balance_events(
                            account_id, account.totals, after, cause="hold", low_threshold=self._low
                        ),
                    )
                    expired += len(amounts)
                self._on_change(account_id)
            return expired
