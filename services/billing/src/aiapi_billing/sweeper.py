"""Expiry of holds that were never settled (an edge crashed mid-request).

Expiring a hold gives its amount back to ``available``; a usage event that arrives later still
bills in full (settlement finds no open hold to release and debits anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aiapi_billing.ledger import apply_totals, lock_account, queue_events
from aiapi_billing.notices import balance_events

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
        """Expire overdue holds, one account per transaction (account row locked first)."""
        async with self._pool.connection(timeout=5.0) as conn:
            cur = await conn.execute(
                "SELECT DISTINCT account_id FROM holds WHERE state = 'open' AND expires_at < now()"
                " LIMIT %s",
                (limit,),
            )
            accounts = [str(r[0]) for r in await cur.fetchall()]
            await conn.commit()
            expired = 0
            for account_id in accounts:
                async with conn.transaction():
                    account = await lock_account(conn, account_id)
                    cur = await conn.execute(
                        "UPDATE holds SET state = 'expired', closed_at = now()"
                        " WHERE account_id = %s AND state = 'open' AND expires_at < now()"
                        " RETURNING amount",
                        (account_id,),
                    )
                    amounts = [int(r[0]) for r in await cur.fetchall()]
                    if not amounts:
                        continue
                    after = await apply_totals(conn, account_id, hold_delta=-sum(amounts))
                    await queue_events(
                        conn,
                        balance_events(
                            account_id, account.totals, after, cause="hold", low_threshold=self._low
                        ),
                    )
                    expired += len(amounts)
                self._on_change(account_id)
            return expired
