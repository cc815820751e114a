"""The ``outbox`` table's writing side: events queued in the transaction that made them true.

The relay (``aiapi_billing.outbox``) publishes and deletes them after commit; settlement hands
the rows it queued straight to the relay (:func:`queue_events` returns them with their ids).
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence

from aiapi_shared.events import Event
from aiapi_shared.outbox import OutboxRow

from aiapi_billing.repository import Conn, json_rows, rows_of

_QUEUE = (
    "INSERT INTO outbox (event_id, subject, payload)"  # noqa: S608 (fixed names, no values)
    " SELECT event_id, subject, decode(payload, 'base64')"
    f" FROM ({rows_of((('event_id', 'text'), ('subject', 'text'), ('payload', 'text')))}) AS e"
    " RETURNING id, event_id"
)


async def queue_events(conn: Conn, events: Sequence[Event]) -> list[OutboxRow]:
    """Write events to the outbox in the caller's transaction, in their order (one statement;
    each payload travels base64-encoded, byte for byte); the relay publishes them. Returns the
    rows as written, in the events' order (their ids are the table's)."""
    if not events:
        return []
    payloads = [e.to_json() for e in events]
    rows = (
        (e.event_id, e.subject, b64encode(p).decode())
        for e, p in zip(events, payloads, strict=True)
    )
    cur = await conn.execute(_QUEUE, (json_rows(rows),))
    # RETURNING's order is not promised: matched by event id (unique in the table).
    ids = {str(event_id): int(row_id) for row_id, event_id in await cur.fetchall()}
    return [
        OutboxRow(ids[e.event_id], e.event_id, e.subject, p)
        for e, p in zip(events, payloads, strict=True)
    ]
