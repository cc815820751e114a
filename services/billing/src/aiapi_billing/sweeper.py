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

from aiapi_billing.ledger import Conn, apply_totals, lock_account, queue_events
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
        """Expire overdue holds and leases, one account per transaction (account row locked
        first, then its holds and leases); returns how many expired."""
        async with self._pool.connection(timeout=5.0) as conn:
            cur = await conn.execute(
                "SELECT account_id FROM holds WHERE state = 'open' AND expires_at < now()"
                " UNION SELECT account_id FROM leases"
                " WHERE state IN ('open', 'closed') AND expires_at < now() LIMIT %s",
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
                    amounts += await _expire_leases(conn, account_id)
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


async def _expire_leases(conn: Conn, account_id: str) -> list[int]:
    """Expire the account's overdue live leases (its row is locked); what each still held."""
    cur = await conn.execute(
        "UPDATE leases l SET state = 'expired', open_amount = 0,"
        " closed_at = coalesce(l.closed_at, now())"
        " FROM (SELECT lease_id, open_amount FROM leases WHERE account_id = %s"
        "       AND state IN ('open', 'closed') AND expires_at < now()"
        "       ORDER BY lease_id FOR UPDATE) old"
        " WHERE l.lease_id = old.lease_id RETURNING old.open_amount",
        (account_id,),
    )
    return [int(r[0]) for r in await cur.fetchall()]
