"""The durable JetStream consumers: usage settlement, deposits, and the accounts mirror.

Each message is handled in its own transaction; the bus acks it only after that commit. A
database outage becomes :class:`RetryableError` after a pause, so the consumer slows to the
database's pace and redelivers (``max_deliver=-1``). Any other failure is redelivered with
backoff by the bus; only a message that does not decode (``decode_event``) is set aside in the
dead-letter stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiapi_shared.bus import Bus, Msg, decode_event
from aiapi_shared.errors import PoisonMessage, RetryableError
from aiapi_shared.events import (
    EVENTS_BY_SUBJECT,
    DepositConfirmed,
    DepositReversed,
    UsageRecorded,
)
from aiapi_shared.outbox import Outbox
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aiapi_billing.account_sync import apply_account_event
from aiapi_billing.deposits import DepositBook
from aiapi_billing.errors import UnpricedModel
from aiapi_billing.repository import Conn
from aiapi_billing.settlement import BatchResult, Settler

log = logging.getLogger("aiapi.billing.consumers")

OUTAGE_PAUSE_S = 1.0


@dataclass
class Counters:
    settled: int = 0
    duplicates: int = 0
    conflicts: int = 0
    deposits: int = 0
    deposits_reversed: int = 0  # a confirmed deposit left the chain: an operator must look
    commits: int = 0


@dataclass
class Consumers:
    pool: AsyncConnectionPool
    bus: Bus
    settler: Settler
    deposits: DepositBook
    after_commit: Callable[[str], None]
    crash_after_commits: int = 0
    ack_wait_s: float = 30.0
    batch: int = 256
    linger_s: float = 0.0
    linger_max_s: float | None = None
    linger_target: int = 32
    # Given: the settlement's committed batch goes straight to the relay and the snapshots
    # (``after_settle``), and each settlement transaction bookkeeps the rows the relay published
    # since the previous one (no transaction of the relay's own per batch). Else each billed
    # account goes through ``after_commit``, as every other change does.
    relay: Outbox | None = None
    after_settle: Callable[[BatchResult], None] | None = None
    counters: Counters = field(default_factory=Counters)

    def tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        usage = self.bus.consume_batches(
            stream="USAGE",
            durable="billing-settlement",
            subject=UsageRecorded.subject,
            handler=self.on_usage_batch,
            batch=self.batch,
            ack_wait_s=self.ack_wait_s,
            stop=stop,
            linger_s=self.linger_s,
            linger_max_s=self.linger_max_s,
            linger_target=self.linger_target,
        )
        specs = (
            ("PAYMENTS", "billing-deposits", "payments.v1.deposit.*", self.on_deposit),
            ("ACCOUNTS", "billing-accounts", "accounts.v1.>", self.on_account),
        )
        return [
            asyncio.create_task(usage, name="billing-settlement"),
            *(
                asyncio.create_task(
                    self.bus.consume(
                        stream=stream,
                        durable=durable,
                        subject=subject,
                        handler=handler,
                        stop=stop,
                        ack_wait_s=self.ack_wait_s,
                    ),
                    name=durable,
                )
                for stream, durable, subject, handler in specs
            ),
        ]

    async def _in_transaction(self, work: Callable[[Conn], Awaitable[None]]) -> None:
        try:
            async with self.pool.connection(timeout=5.0) as conn, conn.transaction():
                await work(conn)
        except (OperationalError, PoolTimeout) as exc:
            # Pause here so the consumer follows the database's pace rather than spinning.
            await asyncio.sleep(OUTAGE_PAUSE_S)
            raise RetryableError(f"database unavailable: {type(exc).__name__}") from exc

    def _committed(self, account_id: str | None = None) -> None:
        self.counters.commits += 1
        if account_id is not None:
            self.after_commit(account_id)
        if self.crash_after_commits and self.counters.commits >= self.crash_after_commits:
            log.error("test crash: exiting after commit %d, before its ack", self.counters.commits)
            os._exit(3)

    async def on_usage_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        """Settle a fetched batch in one transaction (one commit, one fsync, for many events)."""
        outcomes: list[BaseException | None] = [None] * len(msgs)
        events: list[UsageRecorded] = []
        places: list[int] = []
        for i, msg in enumerate(msgs):
            try:
                events.append(decode_event(UsageRecorded, msg.data))
                places.append(i)
            except PoisonMessage as exc:
                outcomes[i] = exc
        results: list[BatchResult] = []
        bookkept: list[int] = []

        async def work(conn: Conn) -> None:
            results.clear()
            results.append(await self.settler.settle_batch(conn, events))
            bookkept[:] = await self.relay.bookkeep_relayed(conn) if self.relay else []

        if events:
            await self._in_transaction(work)
            if self.relay is not None:
                self.relay.forgotten(bookkept)
        settled = results[0].outcomes if results else []
        for place, outcome, event in zip(places, settled, events, strict=True):
            if isinstance(outcome, UnpricedModel):
                log.error("usage %s waits for a price: %s", event.request_id, outcome)
                outcomes[place] = RetryableError(str(outcome), delay_s=30.0)
        self.counters.settled += settled.count("settled")
        self.counters.duplicates += settled.count("duplicate")
        self.counters.conflicts += settled.count("conflict")
        if "conflict" in settled:
            log.error("usage events conflicting with their settled record were set aside")
        if results and self.after_settle is not None:
            self.after_settle(results[0])
        else:
            for account_id in results[0].accounts if results else ():
                self.after_commit(account_id)
        self._committed()
        return outcomes

    async def on_deposit(self, msg: Msg) -> None:
        cls = EVENTS_BY_SUBJECT.get(msg.subject)
        if cls is DepositConfirmed:
            confirmed = decode_event(DepositConfirmed, msg.data)
            await self._in_transaction(lambda conn: self._credit(conn, confirmed))
            self._committed(confirmed.account_id)
        elif cls is DepositReversed:
            reversed_ = decode_event(DepositReversed, msg.data)
            await self._in_transaction(lambda conn: self._reverse(conn, reversed_))
            self._committed(reversed_.account_id)

    async def _credit(self, conn: Conn, event: DepositConfirmed) -> None:
        if await self.deposits.credit(conn, event):
            self.counters.deposits += 1

    async def _reverse(self, conn: Conn, event: DepositReversed) -> None:
        if await self.deposits.reverse(conn, event):
            self.counters.deposits_reversed += 1

    async def on_account(self, msg: Msg) -> None:
        cls = EVENTS_BY_SUBJECT.get(msg.subject)
        if cls is None:
            return
        event = decode_event(cls, msg.data)
        await self._in_transaction(lambda conn: apply_account_event(conn, event))
