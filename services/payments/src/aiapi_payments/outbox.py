"""Relay the outbox to JetStream (I/O), in the order the events were written.

Each row is published with `Nats-Msg-Id` = its event id, then marked published; publishing a
deposit's confirmed event is what makes it `credited`. A crash between the two publishes the
row again on restart: JetStream drops the copy inside its duplicate window, and billing's key
per deposit id drops it after. Rows are never skipped: the relay stops at the first failure
and starts again from the same row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiapi_shared.bus import Bus, BusUnavailable
from aiapi_shared.events.payments_v1 import DepositConfirmed

from aiapi_payments.repository import Repository

log = logging.getLogger("aiapi.payments.outbox")


class OutboxRelay:
    def __init__(self, repository: Repository, bus: Bus, *, interval_s: float = 1.0) -> None:
        self._repository = repository
        self._bus = bus
        self._interval_s = interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows were committed: relay them now rather than at the next sweep."""
        self._wake.set()

    async def relay_pending(self) -> int:
        """Publish what is pending; returns how many rows left. Raises BusUnavailable."""
        published = 0
        while rows := await self._repository.pending_outbox():
            for row in rows:
                await self._bus.publish(row.subject, row.payload, row.event_id)
                await self._repository.mark_published(
                    row, credits=row.subject == DepositConfirmed.subject
                )
                published += 1
        return published

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                count = await self.relay_pending()
                if count:
                    log.info("outbox: published %d event(s)", count)
            except BusUnavailable as error:
                log.warning("outbox: NATS unavailable, retrying: %s", error)
            except Exception:
                log.exception("outbox: relay failed, retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
