"""Settlement over real NATS and PostgreSQL: exactly once, conflicts set aside, holds released."""

from __future__ import annotations

from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_shared.bus import Bus, KeyNotFound
from aiapi_shared.events import BalanceChanged, RequestPriced
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, BalanceSnapshot
from aiapi_shared.money import parse_usd

from tests.billing.conftest import admission, admit, credit, eventually, scalar, usage_event


async def _count(db: psycopg.AsyncConnection[Any], query: str, *params: Any) -> int:
    return int(await scalar(db, query, *params))


async def test_the_same_usage_event_twice_debits_once(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_1", "10.00")
    event = usage_event("acc_1", input_tokens=1_000_000, output_tokens=0)
    await bus.publish_event(event)
    # Beyond NATS's duplicate window: same content, different message id.
    await bus.publish(event.subject, event.to_json(), "a-different-msg-id")
    await eventually(
        lambda: billing.consumers is not None and billing.consumers.counters.duplicates == 1
    )
    assert await _count(db, "SELECT count(*) FROM usage_records") == 1
    assert await _count(db, "SELECT count(*) FROM transfers WHERE kind = 'usage'") == 1
    balance = await _count(db, "SELECT credits - debits FROM accounts WHERE account_id = 'acc_1'")
    assert balance == parse_usd("10.00") - parse_usd("0.90")


async def test_same_id_different_content_is_set_aside_not_billed(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    first = usage_event("acc_2", request_id="req_conflict", output_tokens=10)
    second = usage_event("acc_2", request_id="req_conflict", output_tokens=99_999)
    await bus.publish_event(first)
    await bus.publish(second.subject, second.to_json(), "other-msg-id")
    await eventually(
        lambda: billing.consumers is not None and billing.consumers.counters.conflicts == 1
    )
    assert await _count(db, "SELECT count(*) FROM usage_conflicts") == 1
    assert await _count(db, "SELECT output_tokens FROM usage_records") == 10
    assert await _count(db, "SELECT count(*) FROM transfers WHERE kind = 'usage'") == 1


async def test_settlement_releases_the_hold_and_publishes_events_and_a_snapshot(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_3", "1.00")
    req = admission("acc_3", max_tokens=1000, estimated_input_tokens=1000)
    reply = await admit(bus, req)
    assert reply.decision == "admit" and reply.hold_id
    assert (
        await _count(db, "SELECT holds FROM accounts WHERE account_id = 'acc_3'")
        == reply.hold_amount
    )
    sub = await bus.js.subscribe("billing.v1.>", ordered_consumer=True)
    await bus.publish_event(
        usage_event("acc_3", request_id=req.request_id, input_tokens=1000, output_tokens=10)
    )
    expected_cost = parse_usd("0.0009") + parse_usd("0.000045")
    await eventually(lambda: _count(db, "SELECT count(*) FROM usage_records"))
    assert await _count(db, "SELECT holds FROM accounts WHERE account_id = 'acc_3'") == 0
    seen: dict[str, bytes] = {}
    for _ in range(20):
        msg = await sub.next_msg(timeout=5)
        seen[msg.subject] = msg.data
        if RequestPriced.subject in seen and BalanceChanged.subject in seen:
            break
    priced = RequestPriced.model_validate_json(seen[RequestPriced.subject])
    assert priced.cost == expected_cost and priced.request_id == req.request_id
    kv = await bus.ensure_kv(BALANCES_BUCKET)

    async def snapshot_settled() -> bool:
        try:
            entry = await kv.get("acc_3")
        except KeyNotFound:  # snapshots are written shortly after the commit, not in it
            return False
        snap = BalanceSnapshot.model_validate_json(entry.value or b"")
        return snap.balance == parse_usd("1.00") - expected_cost and snap.available == snap.balance

    await eventually(snapshot_settled)


async def test_an_expired_hold_is_released_and_a_late_event_still_bills(
    migrated: str, nats_url: str, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    from tests.billing.conftest import assert_books_balance, billing_settings

    service = Service(billing_settings(migrated, nats_url, hold_ttl_s=5))
    await service.start()
    try:
        await credit(bus, "acc_4", "1.00")
        req = admission("acc_4")
        assert (await admit(bus, req)).decision == "admit"
        await db.execute("UPDATE holds SET expires_at = now() - interval '1 second'")
        await eventually(lambda: _count(db, "SELECT count(*) FROM holds WHERE state = 'expired'"))
        assert await _count(db, "SELECT holds FROM accounts WHERE account_id = 'acc_4'") == 0
        await bus.publish_event(usage_event("acc_4", request_id=req.request_id))
        await eventually(lambda: _count(db, "SELECT count(*) FROM usage_records"))
        debits = await _count(db, "SELECT debits FROM accounts WHERE account_id = 'acc_4'")
        assert debits == parse_usd("0.0009") + parse_usd("0.00225")
    finally:
        await service.stop()
    await assert_books_balance(migrated)
