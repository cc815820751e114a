"""Admission over NATS: holds in one conditional update, limits shared by every replica."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_cli.embedded import EmbeddedPostgres
from aiapi_shared.admission import EXTEND_SUBJECT, HoldExtensionReply, HoldExtensionRequest
from aiapi_shared.bus import Bus
from aiapi_shared.events import AccountCreated, AccountStatusChanged
from aiapi_shared.money import parse_usd

from tests.billing.conftest import (
    admission,
    admit,
    assert_books_balance,
    billing_settings,
    credit,
    eventually,
    scalar,
)


async def test_admits_with_a_hold_or_refuses_for_balance(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    refused = await admit(bus, admission("acc_a"))
    assert refused.decision == "insufficient_balance"
    await credit(bus, "acc_a", "0.01")
    # sonnet basic: 1000 input (0.0009) + 1000 output (0.0045) = 0.0054 USD held
    first = await admit(bus, admission("acc_a"))
    assert first.decision == "admit" and first.hold_amount == parse_usd("0.0054")
    assert first.available == parse_usd("0.0046")
    second = await admit(bus, admission("acc_a"))
    assert second.decision == "insufficient_balance"
    assert await scalar(db, "SELECT count(*) FROM holds") == 1


async def test_a_retried_admission_returns_the_same_hold(billing: Service, bus: Bus) -> None:
    await credit(bus, "acc_b", "1.00")
    req = admission("acc_b")
    first, again = await admit(bus, req), await admit(bus, req)
    assert first.decision == again.decision == "admit"
    assert first.hold_id == again.hold_id and first.hold_amount == again.hold_amount


async def test_unknown_model_and_suspended_account_are_refused(billing: Service, bus: Bus) -> None:
    await credit(bus, "acc_c", "1.00")
    assert (await admit(bus, admission("acc_c", model="gpt-4"))).decision == "unknown_model"
    await bus.ensure_streams()
    await bus.publish_event(AccountCreated(account_id="acc_c", plan="basic"))
    await bus.publish_event(AccountStatusChanged(account_id="acc_c", status="suspended"))

    async def suspended() -> bool:
        return (await admit(bus, admission("acc_c"))).decision == "account_inactive"

    await eventually(suspended)


async def test_hold_extension_grows_the_hold_until_the_balance_is_spent(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_d", "0.01")
    reply = await admit(bus, admission("acc_d", max_tokens=100, estimated_input_tokens=0))
    assert reply.hold_id is not None

    async def extend(tokens: int) -> HoldExtensionReply:
        req = HoldExtensionRequest(
            hold_id=reply.hold_id or "", account_id="acc_d", additional_output_tokens=tokens
        )
        data = await bus.request(EXTEND_SUBJECT, req.model_dump_json().encode(), timeout_s=5)
        return HoldExtensionReply.model_validate_json(data)

    grown = await extend(1000)  # 0.0045 USD more
    assert grown.granted and grown.hold_amount == parse_usd("0.00045") + parse_usd("0.0045")
    refused = await extend(10_000)  # 0.045 USD: more than is left
    assert not refused.granted and refused.hold_amount == grown.hold_amount
    assert (
        await scalar(db, "SELECT holds FROM accounts WHERE account_id = 'acc_d'")
        == grown.hold_amount
    )


async def test_two_edges_and_two_billing_replicas_share_one_requests_per_minute_limit(
    migrated: str, nats_url: str, bus: Bus
) -> None:
    replicas = [Service(billing_settings(migrated, nats_url)) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    edge_a, edge_b = bus, await Bus.connect(nats_url, name="edge-b")
    try:
        await credit(bus, "acc_e", "100.00")
        # The basic plan allows 200 requests per minute, across every replica together (the
        # allowance refills smoothly: one more request per 0.3 s that the burst takes).
        loop = asyncio.get_running_loop()
        started = loop.time()
        replies = await asyncio.gather(
            *(
                admit(edge_a if i % 2 else edge_b, admission("acc_e", max_tokens=1))
                for i in range(260)
            )
        )
        refilled = int((loop.time() - started) / 0.3) + 1
        decisions = [r.decision for r in replies]
        assert 200 <= decisions.count("admit") <= 200 + refilled < 260
        assert decisions.count("admit") + decisions.count("rate_limited") == 260
        assert all(1 <= (r.retry_after_s or 0) <= 60 for r in replies if r.decision != "admit")
    finally:
        await edge_b.close()
        for replica in replicas:
            await replica.stop()
    await assert_books_balance(migrated)


async def test_tokens_per_minute_limit_counts_the_estimate(billing: Service, bus: Bus) -> None:
    await credit(bus, "acc_f", "100.00")
    big = {"estimated_input_tokens": 400_000, "max_tokens": 100_000, "model": "claude-haiku-4-5"}
    assert (await admit(bus, admission("acc_f", **big))).decision == "admit"  # type: ignore[arg-type]
    assert (await admit(bus, admission("acc_f", **big))).decision == "admit"  # type: ignore[arg-type]
    limited = await admit(bus, admission("acc_f", **big))  # type: ignore[arg-type]
    assert limited.decision == "rate_limited" and limited.retry_after_s


async def test_admission_recovers_at_once_after_postgres_restarts(
    restartable_postgres: EmbeddedPostgres, nats_url: str, bus: Bus
) -> None:
    # Admission's connections are not probed on checkout (a round trip saved per request): the
    # first one found broken makes the pool replace them all and the admission is retried.
    service = Service(billing_settings(restartable_postgres.url, nats_url))
    await service.start()
    try:
        await credit(bus, "acc_g", "1.00")
        for _ in range(10):  # every pooled admission connection has been used
            await asyncio.gather(*(admit(bus, admission("acc_g", max_tokens=1)) for _ in range(8)))
        restartable_postgres.stop()
        restartable_postgres.start()
        replies = [await admit(bus, admission("acc_g", max_tokens=1)) for _ in range(3)]
        assert [r.decision for r in replies] == ["admit"] * 3
    finally:
        await service.stop()
    await assert_books_balance(restartable_postgres.url)


async def test_the_hold_is_taken_at_the_premium_the_edge_names(billing: Service, bus: Bus) -> None:
    await credit(bus, "acc_premium", "1.00")
    # sonnet basic, inference_geo "us" over the long-context threshold: input 2.2x, output 1.65x.
    asked = admission("acc_premium").model_copy(
        update={"input_premium_bps": 22_000, "output_premium_bps": 16_500}
    )
    held = await admit(bus, asked)
    assert held.decision == "admit"
    assert held.hold_amount == parse_usd("0.0009") * 22 // 10 + parse_usd("0.0045") * 165 // 100
