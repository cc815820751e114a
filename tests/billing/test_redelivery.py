"""Issue 14 in billing: a deposit whose handler fails is credited once it stops failing, never
dropped; only undecodable data is set aside (and counted on billing's /metrics)."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from aiapi_billing.deposits import DepositBook
from aiapi_billing.service import Service
from aiapi_shared.bus import Bus
from aiapi_shared.events import DepositConfirmed, UsageRecorded
from aiapi_shared.money import parse_usd
from aiapi_shared.probes import Probes

from tests.billing.conftest import eventually, scalar


async def test_a_deposit_whose_credit_fails_once_is_credited_on_redelivery(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_credit = DepositBook.credit
    attempts: list[str] = []

    async def buggy_credit(self: DepositBook, conn: Any, event: DepositConfirmed) -> bool:
        attempts.append(event.deposit_id)
        if len(attempts) == 1:  # a bug: pydantic refuses a document the handler built wrongly
            DepositConfirmed.model_validate({"deposit_id": event.deposit_id})
        return await real_credit(self, conn, event)

    monkeypatch.setattr(DepositBook, "credit", buggy_credit)
    deposit = DepositConfirmed(
        deposit_id="dep_bug",
        account_id="acc_bug",
        asset="USDT",
        network="ethereum",
        tx_hash="0xbug",
        position=0,
        amount="12.5",
        usd=parse_usd("12.5"),
        rate_usd=parse_usd("1.00"),
    )
    await bus.publish_event(deposit)
    query = "SELECT credits FROM accounts WHERE account_id = 'acc_bug'"

    async def credited() -> bool:
        return await scalar(db, query) == parse_usd("12.5")

    await eventually(credited, timeout_s=30)
    assert attempts == ["dep_bug", "dep_bug"]
    assert await bus.dead_letters() == []
    assert billing.bus is not None
    retries = billing.bus.metrics.registry.get_sample_value(
        "aiapi_consumer_retries_total", {"consumer": "billing-deposits"}
    )
    assert retries == 1


async def test_undecodable_usage_is_set_aside_and_counted_on_metrics(
    billing: Service, bus: Bus
) -> None:
    await bus.publish(UsageRecorded.subject, b'{"request_id": 7}', "garbled-usage")
    letters: list[Any] = []

    async def set_aside() -> bool:
        letters[:] = await bus.dead_letters()
        return bool(letters)

    await eventually(set_aside)
    assert [(x.consumer, x.subject, x.data) for x in letters] == [
        ("billing-settlement", UsageRecorded.subject, b'{"request_id": 7}')
    ]
    # The internal listener's app, over the running service.
    app = Probes("billing", "test", billing.ready, billing.render_metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://b") as http:
        metrics = (await http.get("/metrics")).text
    assert 'aiapi_consumer_dead_lettered_total{consumer="billing-settlement"} 1.0' in metrics
