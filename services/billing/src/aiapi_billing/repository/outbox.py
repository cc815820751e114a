"""The ``outbox`` table's writing side: events queued in the transaction that made them true.

The relay (``aiapi_billing.outbox``) publishes and deletes them after commit.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence

from aiapi_shared.events import Event

from aiapi_billing.repository import Conn, json_rows, rows_of

_QUEUE = (
    "INSERT INTO outbox (event_id, subject, payload)"  # noqa: S608 (fixed names, no values)
    " SELECT event_id, subject, decode(payload, 'base64')"
    f" FROM ({rows_of((('event_id', 'text'), ('subject', 'text'), ('payload', 'text')))}) AS e"
)


async def queue_events(conn: Conn, events: Sequence[Event]) -> None:
    """Write events to the outbox in the caller's transaction, in their order (one statement;
    each payload travels base64-encoded, byte for byte); the relay publishes them."""
    if not events:
        return
    rows = ((e.event_id, e.subject, b64encode(e.to_json()).decode()) for e in events)
    await conn.execute(_QUEUE, (json_rows(rows),))
