"""Payments' outbox, relayed to JetStream by :mod:`aiapi_shared.outbox` in the order the events
were written.

Each row is published with ``Nats-Msg-Id`` = its event id, then marked published (rows are kept:
``published_at``); publishing a deposit's confirmed event is what makes it ``credited`` (the
after-publish hook, in the same transaction). A crash between the two publishes the row again on
restart: JetStream drops the copy inside its duplicate window, and billing's key per deposit id
drops it after. The table is ``ordered``: one relay and one publish at a time, stopping at the
first failure, so a deposit's reversal never overtakes its confirmation in the stream.
"""

from __future__ import annotations

from aiapi_shared.bus import Bus
from aiapi_shared.outbox import Outbox, OutboxTable
from psycopg_pool import AsyncConnectionPool

from aiapi_payments.repository import credit_published

OUTBOX = OutboxTable("payments", keep_published=True, ordered=True)


def outbox_relay(pool: AsyncConnectionPool, bus: Bus) -> Outbox:
    return Outbox(pool, bus, OUTBOX, after_publish=credit_published, batch=100)
