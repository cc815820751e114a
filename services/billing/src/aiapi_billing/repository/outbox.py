"""The ``outbox`` table's writing side: events queued in the transaction that made them true.

The relay (``aiapi_billing.outbox``) publishes and deletes them after commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiapi_shared.events import Event

from aiapi_billing.repository import Conn


async def queue_events(conn: Conn, events: Sequence[Event]) -> None:
    """Write events to the outbox in the caller's transaction; the relay publishes them."""
    if not events:
        return
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, payload)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[])",
        (
            [e.event_id for e in events],
            [e.subject for e in events],
            [e.to_json() for e in events],
        ),
    )
