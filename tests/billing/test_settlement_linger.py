"""The settlement consumer's adaptive linger with the real consumer: usage events that trickle in
one at a time while it lingers are settled together, in one transaction, each exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiapi_billing.consumers import Consumers
from aiapi_billing.service import Service
from aiapi_billing.settings import BillingSettings
from aiapi_shared.bus import LINGER_TARGET, Bus

from tests.billing.conftest import (
    assert_books_balance,
    billing_settings,
    credit,
    eventually,
    scalar,
    usage_event,
)


async def test_usage_trickling_in_is_settled_in_one_transaction_exactly_once(
    migrated: str, nats_url: str, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    # A floor of 1 s: after the first short batch the consumer waits at least that long, so the
    # events published one by one meanwhile (each acknowledged by the stream before the next)
    # are gathered into the next batch.
    service = Service(
        billing_settings(migrated, nats_url, settlement_linger_s=1.0, settlement_linger_max_s=2.0)
    )
    await service.start()
    try:
        assert service.consumers is not None
        counters = service.consumers.counters
        await credit(bus, "acc_trickle", "10.00")
        first = usage_event("acc_trickle")
        await bus.publish_event(first)
        await eventually(lambda: counters.settled == 1)
        commits = counters.commits
        for _ in range(4):
            await bus.publish_event(usage_event("acc_trickle"))
        # The first one again, under another message id (a relay's duplicate that escaped the
        # stream's window): billing's own key drops it.
        await bus.publish(first.subject, first.to_json(), "the-same-usage-again")
        await eventually(lambda: counters.settled == 5 and counters.duplicates == 1)
        assert counters.commits == commits + 1
        transfers = await scalar(
            db, "SELECT count(*) FROM transfers WHERE account_id = 'acc_trickle'"
        )
        assert transfers == 6  # the credit and five usages, none twice
    finally:
        await service.stop()
    await assert_books_balance(migrated)


class _RecordingBus:
    """Records how each consumer loop was asked for (its coroutine is never run)."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    async def consume_batches(self, **kwargs: Any) -> None:
        self.batches.append(kwargs)

    async def consume(self, **kwargs: Any) -> None:
        return None


async def test_the_settlement_linger_steers_towards_its_own_batch_size() -> None:
    """Settlement gathers bigger batches than the bus's default target: its fixed cost per batch
    is several times an event's."""
    settings = BillingSettings(settlement_linger_target=200)
    assert BillingSettings().settlement_linger_target > LINGER_TARGET
    bus = _RecordingBus()
    consumers = Consumers(
        pool=None,  # type: ignore[arg-type]
        bus=bus,  # type: ignore[arg-type]
        settler=None,  # type: ignore[arg-type]
        deposits=None,  # type: ignore[arg-type]
        after_commit=lambda _account: None,
        linger_target=settings.settlement_linger_target,
    )
    tasks = consumers.tasks(asyncio.Event())
    await asyncio.gather(*tasks)
    assert [b["linger_target"] for b in bus.batches] == [200]
