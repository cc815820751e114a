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


def _item_row(item: BatchItemAsk) -> list[Any]:
    return [
        item.requested_model,
        item.model,
        item.estimated_input_tokens,
        item.max_tokens,
        item.server_tools_nano,
    ]


def stored_items(items: dict[str, list[Any]]) -> list[BatchItemAsk]:
    """The batch's requests as staged (``items`` from :func:`lock`)."""
    return [
        BatchItemAsk(
            custom_id=custom_id,
            requested_model=row[0],
            model=row[1],
            estimated_input_tokens=row[2],
            max_tokens=row[3],
            server_tools_nano=row[4],
        )
        for custom_id, row in items.items()
    ]


async def stage(
    conn: Conn,
    *,
    batch_id: str,
    account_id: str,
    key_id: str,
    plan: str,
    items: Sequence[BatchItemAsk],
    started_at: datetime,
) -> None:
    """Add requests to a batch being staged (created on the first chunk); a chunk sent again
    replaces its own entries (keyed by custom_id). Nothing changes once it left ``staging``."""
    chunk = {item.custom_id: _item_row(item) for item in items}
    await conn.execute(
        "INSERT INTO batches (batch_id, account_id, key_id, plan, items, started_at, state)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'staging') ON CONFLICT (batch_id) DO UPDATE"
        " SET items = batches.items || EXCLUDED.items"
        " WHERE batches.state = 'staging' AND batches.account_id = EXCLUDED.account_id",
        (batch_id, account_id, key_id, plan, Jsonb(chunk), started_at),
    )


async def hold_taken(conn: Conn, batch_id: str, amount: int) -> None:
    """The hold is taken: ``staging`` becomes ``opening``."""
    await conn.execute(
        "UPDATE batches SET state = 'opening', hold_amount = %s WHERE batch_id = %s",
        (amount, batch_id),
    )


async def discard(conn: Conn, batch_id: str) -> None:
    """A batch refused at its hold leaves nothing behind."""
    await conn.execute("DELETE FROM batches WHERE batch_id = %s AND state = 'staging'", (batch_id,))


async def lock(conn: Conn, batch_id: str) -> tuple[BatchRecord, dict[str, list[Any]]] | None:
    """The batch and its items (per custom_id: ``[requested model, sold model, estimated input,
    max_tokens, server tools' worst case]``), locked until commit."""
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
    """Batches never bound to an upstream id (the edge stopped while staging, or between the
    hold and the upstream's answer)."""
    cur = await conn.execute(
        "SELECT batch_id FROM batches WHERE state IN ('staging', 'opening')"
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
