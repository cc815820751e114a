"""Deposits, plan purchases, adjustments and the read side, through billing's NATS subjects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiapi_billing.repository.prices import add_price
from aiapi_billing.service import Service
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.events import (
    AccountCreated,
    DepositConfirmed,
    DepositCredited,
    DepositReversed,
    PlanPurchased,
)
from aiapi_shared.money import parse_usd

from tests.billing.conftest import admission, admit, credit, eventually, scalar, usage_event


async def _ask(bus: Bus, subject: str, body: api.Record) -> bytes:
    return await bus.request(subject, body.model_dump_json().encode(), timeout_s=10)


def _deposit(account_id: str, deposit_id: str, usd: str, cls: Any = DepositConfirmed) -> Any:
    extra = {"rate_usd": parse_usd("1.00")} if cls is DepositConfirmed else {}
    return cls(
        deposit_id=deposit_id,
        account_id=account_id,
        asset="USDT",
        network="ethereum",
        tx_hash="0xabc",
        position=0,
        amount=usd,
        usd=parse_usd(usd),
        **extra,
    )


async def _balance(bus: Bus, account_id: str) -> api.AccountBalanceReply:
    data = await _ask(bus, api.ACCOUNT_SUBJECT, api.AccountQuery(account_id=account_id))
    return api.AccountBalanceReply.model_validate_json(data)


async def test_a_deposit_credits_once_and_a_reversal_debits_it_back_once(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    sub = await bus.js.subscribe(DepositCredited.subject, ordered_consumer=True)
    deposit = _deposit("acc_m", "dep_1", "25.5")
    await bus.publish_event(deposit)
    await bus.publish(deposit.subject, deposit.to_json(), "redelivered-by-another-relay")
    credited = DepositCredited.model_validate_json((await sub.next_msg(timeout=10)).data)
    assert credited.amount == parse_usd("25.5") and credited.deposit_id == "dep_1"
    await eventually(lambda: billing.consumers and billing.consumers.counters.commits >= 2)
    assert (await _balance(bus, "acc_m")).balance == parse_usd("25.5")
    reversal = _deposit("acc_m", "dep_1", "25.5", DepositReversed)
    await bus.publish_event(reversal)
    await bus.publish(reversal.subject, reversal.to_json(), "again")

    async def reversed_once() -> bool:
        return await scalar(db, "SELECT count(*) FROM transfers") == 2

    await eventually(reversed_once)
    await eventually(lambda: billing.consumers and billing.consumers.counters.commits >= 4)
    assert (await _balance(bus, "acc_m")).balance == 0
    # aiapi_billing_deposits_reversed_total (an alert): once, though the event came twice.
    assert billing.consumers is not None
    assert billing.consumers.counters.deposits_reversed == 1


async def test_concurrent_deposits_and_usage_lose_no_update(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    publishes = []
    for i in range(40):
        publishes.append(bus.publish_event(_deposit("acc_n", f"dep_{i}", "1.00")))
        publishes.append(bus.publish_event(usage_event("acc_n", output_tokens=1000)))
    await asyncio.gather(*publishes)

    async def all_done() -> bool:
        count = await scalar(db, "SELECT count(*) FROM transfers WHERE account_id = 'acc_n'")
        return bool(count == 80)

    await eventually(all_done, timeout_s=30)
    balance = (await _balance(bus, "acc_n")).balance
    per_request = parse_usd("0.0009") + parse_usd("0.0045")
    assert balance == 40 * parse_usd("1.00") - 40 * per_request


async def test_buying_pro_debits_19_usd_once(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    cmd = api.PurchasePlanCommand(account_id="acc_p", plan="pro")
    poor = api.ApiError.model_validate_json(await _ask(bus, api.PURCHASE_PLAN_SUBJECT, cmd))
    assert poor.status == 402
    await credit(bus, "acc_p", "20.00")
    sub = await bus.js.subscribe(PlanPurchased.subject, ordered_consumer=True)
    first = api.PurchasePlanReply.model_validate_json(
        await _ask(bus, api.PURCHASE_PLAN_SUBJECT, cmd)
    )
    again = api.PurchasePlanReply.model_validate_json(
        await _ask(bus, api.PURCHASE_PLAN_SUBJECT, cmd)
    )
    assert first.price == parse_usd("19.00") and first.balance == parse_usd("1.00")
    assert again.already_owned and again.price == 0 and again.balance == parse_usd("1.00")
    event = PlanPurchased.model_validate_json((await sub.next_msg(timeout=10)).data)
    assert event.plan == "pro" and event.price == parse_usd("19.00")
    # An operator made this account pro directly: no charge either.
    await bus.publish_event(AccountCreated(account_id="acc_q", plan="pro"))
    await credit(bus, "acc_q", "20.00")
    cmd_q = api.PurchasePlanCommand(account_id="acc_q", plan="pro")

    async def owned() -> bool:
        data = await _ask(bus, api.PURCHASE_PLAN_SUBJECT, cmd_q)
        return api.PurchasePlanReply.model_validate_json(data).already_owned

    await eventually(owned)
    assert (await _balance(bus, "acc_q")).balance == parse_usd("20.00")


async def test_adjustments_are_idempotent_and_listed_in_the_ledger(
    billing: Service, bus: Bus
) -> None:
    first = await credit(bus, "acc_r", "5.00", key="ticket-1")
    replay = await credit(bus, "acc_r", "5.00", key="ticket-1")
    assert not first.replayed and replay.replayed and replay.transfer_id == first.transfer_id
    await credit(bus, "acc_r", "-1.25", key="ticket-2")
    data = await _ask(bus, api.LEDGER_SUBJECT, api.LedgerQuery(account_id="acc_r"))
    entries = api.LedgerReply.model_validate_json(data).entries
    assert [(e.kind, e.amount, e.balance_after) for e in entries] == [
        ("adjustment", -parse_usd("1.25"), parse_usd("3.75")),
        ("adjustment", parse_usd("5.00"), parse_usd("5.00")),
    ]
    assert entries[0].memo == "test top-up"


async def test_the_priced_record_of_a_request_and_daily_totals(billing: Service, bus: Bus) -> None:
    await credit(bus, "acc_s", "1.00")
    event = usage_event("acc_s", started_at=datetime.now(UTC), cache_read_input_tokens=1000)
    await bus.publish_event(event)
    query = api.RequestRecordQuery(account_id="acc_s", request_id=event.request_id)

    async def settled() -> bytes | None:
        data = await _ask(bus, api.REQUEST_RECORD_SUBJECT, query)
        return None if b'"status":404' in data else data

    await eventually(settled)
    record = api.RequestRecordReply.model_validate_json(
        await _ask(bus, api.REQUEST_RECORD_SUBJECT, query)
    )
    assert record.cost_usd == parse_usd("0.0009") + parse_usd("0.00225") + parse_usd("0.00009")
    assert record.usage.cache_read_input_tokens == 1000 and record.status == "ok"
    other = api.RequestRecordQuery(account_id="acc_other", request_id=event.request_id)
    missing = api.ApiError.model_validate_json(await _ask(bus, api.REQUEST_RECORD_SUBJECT, other))
    assert missing.status == 404
    daily = api.DailyUsageReply.model_validate_json(
        await _ask(bus, api.DAILY_USAGE_SUBJECT, api.DailyUsageQuery(account_id="acc_s"))
    )
    assert [(r.model, r.requests, r.cost) for r in daily.rows] == [
        ("claude-sonnet-4-6", 1, record.cost_usd)
    ]


async def test_a_price_change_with_events_in_flight_prices_each_by_its_start(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    change = datetime.now(UTC) + timedelta(seconds=1)
    async with db.transaction():
        await add_price(db, "claude-haiku-4-5", change, parse_usd("2.00"), parse_usd("10.00"))
    before = [
        usage_event("acc_t", model="claude-haiku-4-5", started_at=change - timedelta(seconds=s),
                    input_tokens=1_000_000, output_tokens=0)
        for s in (1, 30)
    ]  # fmt: skip
    after = [
        usage_event("acc_t", model="claude-haiku-4-5", started_at=change + timedelta(seconds=s),
                    input_tokens=1_000_000, output_tokens=0)
        for s in (0, 1)
    ]  # fmt: skip
    await asyncio.gather(*(bus.publish_event(e) for e in [*after, *before]))

    async def all_settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == 4)

    await eventually(all_settled)
    for event, price in [(e, "0.30") for e in before] + [(e, "0.60") for e in after]:
        cost = await scalar(
            db, "SELECT cost FROM usage_records WHERE request_id = %s", event.request_id
        )
        assert cost == parse_usd(price)


async def test_200_concurrent_requests_on_a_five_cent_balance_never_overdraw(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_u", "0.05")
    # Each request may cost up to 0.0045 (sonnet basic, 1000 output tokens) and uses 0.0027.
    requests = [admission("acc_u", max_tokens=1000, estimated_input_tokens=0) for _ in range(200)]

    async def one(req: Any) -> str:
        reply = await admit(bus, req)
        if reply.decision == "admit":
            await bus.publish_event(
                usage_event("acc_u", request_id=req.request_id, input_tokens=0, output_tokens=600)
            )
        return reply.decision

    decisions = await asyncio.gather(*(one(r) for r in requests))
    admitted = decisions.count("admit")
    assert admitted >= 11 and set(decisions) <= {"admit", "insufficient_balance"}

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == admitted)

    await eventually(settled, timeout_s=30)
    assert await scalar(db, "SELECT holds FROM accounts WHERE account_id = 'acc_u'") == 0
    assert await scalar(db, "SELECT count(*) FROM holds WHERE state = 'open'") == 0
    balance = await scalar(db, "SELECT credits - debits FROM accounts WHERE account_id = 'acc_u'")
    assert balance >= 0
    assert balance == parse_usd("0.05") - admitted * parse_usd("0.0027")


async def test_an_adjustment_past_the_ledgers_range_is_refused(billing: Service, bus: Bus) -> None:
    # Found by fuzzing accounts' operator API: this was an unhandled "bigint out of range".
    await credit(bus, "acc_big", "9000000000.00")
    for usd in ("1000000000.00", "99999999999999999999.00", "-99999999999999999999.00"):
        cmd = api.AdjustCommand(
            account_id="acc_big", amount=parse_usd(usd), reason="typo", idempotency_key=usd
        )
        data = await _ask(bus, api.ADJUST_SUBJECT, cmd)
        error = api.ApiError.model_validate_json(data)
        assert (error.status, error.error) == (400, "invalid_request_error"), usd
    balance = await credit(bus, "acc_big", "1.00")
    assert balance.balance == parse_usd("9000000001.00")
