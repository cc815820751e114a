"""The ``batches`` table: each customer's Message Batches, their upstream and the tracker's lease.

The batch's hold is a row of ``holds`` (``repository/holds.py``); its requests' usage records are
rows of ``usage_records`` (``repository/usage.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiapi_shared.batches_api import BatchItemAsk, BatchRecord
from psycopg.types.json import Jsonb

from aiapi_billing.repository import Conn

_NAMES = (
    "batch_id", "account_id", "key_id", "plan", "upstream_key", "upstream_id", "state",
    "hold_amount", "cost", "started_at", "snapshot",
)  # fmt: skip

_SELECT = (
    "SELECT batch_id, account_id, key_id, plan, upstream_key, upstream_id, state, hold_amount,"
    " cost, started_at, snapshot FROM batches"
)
_SELECT_WITH_ITEMS = (
    "SELECT batch_id, account_id, key_id, plan, upstream_key, upstream_id, state, hold_amount,"
    " cost, started_at, snapshot, items FROM batches"
)
_VISIBLE = " AND NOT deleted AND state <> 'failed' AND upstream_id IS NOT NULL"


def _record(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord.model_validate(dict(zip(_NAMES, row, strict=True)))


async def insert(
    conn: Conn,
    *,
    batch_id: str,
    account_id: str,
    key_id: str,
    plan: str,
    items: Sequence[BatchItemAsk],
    hold_amount: int,
    started_at: datetime,
) -> bool:
    """A new batch in state ``opening``; False when the id exists (a retried open)."""
    models = {item.custom_id: [item.requested_model, item.model] for item in items}
    cur = await conn.execute(
        "INSERT INTO batches (batch_id, account_id, key_id, plan, items, hold_amount, started_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (batch_id) DO NOTHING RETURNING 1",
        (batch_id, account_id, key_id, plan, Jsonb(models), hold_amount, started_at),
    )
    return await cur.fetchone() is not None


async def lock(conn: Conn, batch_id: str) -> tuple[BatchRecord, dict[str, list[str]]] | None:
    """The batch and its items' ``[requested, sold]`` models, locked until commit."""
    cur = await conn.execute(
        _SELECT_WITH_ITEMS + " WHERE batch_id = %s FOR UPDATE",
        (batch_id,),
    )
    row = await cur.fetchone()
    return None if row is None else (_record(row[:-1]), dict(row[-1]))


async def account_of(conn: Conn, batch_id: str) -> str | None:
    cur = await conn.execute("SELECT account_id FROM batches WHERE batch_id = %s", (batch_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def bind(
    conn: Conn, batch_id: str, upstream_id: str, upstream_key: str, snapshot: dict[str, Any]
) -> bool:
    """The upstream accepted it: ``opening`` becomes ``in_progress``."""
    cur = await conn.execute(
        "UPDATE batches SET upstream_id = %s, upstream_key = %s, snapshot = %s,"
        " state = 'in_progress', next_poll_at = now()"
        " WHERE batch_id = %s AND state = 'opening' RETURNING 1",
        (upstream_id, upstream_key, Jsonb(snapshot), batch_id),
    )
    return await cur.fetchone() is not None


async def finish(
    conn: Conn,
    batch_id: str,
    state: str,
    *,
    snapshot: dict[str, Any] | None = None,
    cost: int = 0,
    billed_items: int = 0,
) -> None:
    """The batch is settled (``ended``) or abandoned (``failed``): the tracker forgets it."""
    await conn.execute(
        "UPDATE batches SET state = %s, snapshot = COALESCE(%s, snapshot), cost = %s,"
        " billed_items = %s, settled_at = now(), claimed_by = NULL, claimed_until = NULL"
        " WHERE batch_id = %s",
        (state, None if snapshot is None else Jsonb(snapshot), cost, billed_items, batch_id),
    )


async def find(conn: Conn, account_id: str, batch_id: str) -> BatchRecord | None:
    """The account's batch (never another account's; never a deleted or abandoned one)."""
    cur = await conn.execute(
        _SELECT + " WHERE batch_id = %s AND account_id = %s" + _VISIBLE,
        (batch_id, account_id),
    )
    row = await cur.fetchone()
    return None if row is None else _record(row)


async def page(
    conn: Conn, account_id: str, limit: int, before_id: str | None, after_id: str | None
) -> tuple[list[BatchRecord], bool]:
    """Newest first. ``after_id``: the page just older than it; ``before_id``: just newer. One
    row more than the page tells whether there are more."""
    mine = _SELECT + " WHERE account_id = %s" + _VISIBLE
    cursor = " (SELECT seq FROM batches WHERE batch_id = %s AND account_id = %s)"
    if before_id is not None:
        cur = await conn.execute(
            mine + " AND seq >" + cursor + " ORDER BY seq ASC LIMIT %s",
            (account_id, before_id, account_id, limit + 1),
        )
        rows = list(await cur.fetchall())
        more = len(rows) > limit
        return [_record(r) for r in reversed(rows[:limit])], more
    if after_id is not None:
        cur = await conn.execute(
            mine + " AND seq <" + cursor + " ORDER BY seq DESC LIMIT %s",
            (account_id, after_id, account_id, limit + 1),
        )
    else:
        cur = await conn.execute(
            mine + " ORDER BY seq DESC LIMIT %s",
            (account_id, limit + 1),
        )
    rows = list(await cur.fetchall())
    return [_record(r) for r in rows[:limit]], len(rows) > limit


async def stale_openings(conn: Conn, older_than_s: float, limit: int) -> list[str]:
    """Batches never bound to an upstream id (the edge stopped between hold and upstream)."""
    cur = await conn.execute(
        "SELECT batch_id FROM batches WHERE state = 'opening'"
        " AND created_at < now() - make_interval(secs => %s) LIMIT %s",
        (older_than_s, limit),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def claim(
    conn: Conn, edge_id: str, upstream_keys: Sequence[str], limit: int, lease_s: float
) -> list[BatchRecord]:
    """Lease due batches this edge can read to it; others' live leases are skipped, not waited
    for (``SKIP LOCKED``), so replicas share the work without blocking each other."""
    cur = await conn.execute(
        "UPDATE batches b SET claimed_by = %s,"
        " claimed_until = now() + make_interval(secs => %s)"
        " FROM (SELECT batch_id FROM batches WHERE state = 'in_progress'"
        "   AND next_poll_at <= now() AND upstream_key = ANY(%s)"
        "   AND (claimed_until IS NULL OR claimed_until < now())"
        "   ORDER BY next_poll_at LIMIT %s FOR UPDATE SKIP LOCKED) due"
        " WHERE b.batch_id = due.batch_id RETURNING b.batch_id",
        (edge_id, lease_s, list(upstream_keys), limit),
    )
    claimed = [str(r[0]) for r in await cur.fetchall()]
    cur = await conn.execute(_SELECT + " WHERE batch_id = ANY(%s) ORDER BY seq", (claimed,))
    return [_record(r) for r in await cur.fetchall()]


async def refresh(conn: Conn, batch_id: str, snapshot: dict[str, Any], next_poll_s: float) -> None:
    """The upstream's latest object of a batch still processing; its lease ends."""
    await conn.execute(
        "UPDATE batches SET snapshot = %s, next_poll_at = now() + make_interval(secs => %s),"
        " claimed_by = NULL, claimed_until = NULL"
        " WHERE batch_id = %s AND state = 'in_progress'",
        (Jsonb(snapshot), next_poll_s, batch_id),
    )


async def mark_deleted(conn: Conn, account_id: str, batch_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE batches SET deleted = true WHERE batch_id = %s AND account_id = %s"
        " AND NOT deleted RETURNING 1",
        (batch_id, account_id),
    )
    return await cur.fetchone() is not None
