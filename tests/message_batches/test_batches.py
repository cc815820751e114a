"""Message Batches end to end: the official SDK against real edges, real billing (PostgreSQL,
NATS) and the simulator's batch API. A batch is held for at admission, billed once at the batch
price (half the standard rate, the plan's discount on top) when it ends, and seen only by its
owner; the books balance after every test (the billing fixture runs the auditor)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import httpx
import psycopg
import pytest
from aiapi_billing.service import SCHEMA
from aiapi_shared.money import parse_usd
from anthropic.types.messages import MessageBatch

from tests.message_batches.conftest import BatchEnv

# claude-haiku-4-5 on the Basic plan in nano-USD per token: list 1 / 5 USD per MTok, 70% off,
# then the batch tier's half: 0.15 / 0.75 USD per MTok.
HAIKU_BATCH_INPUT_NANO = 150
HAIKU_BATCH_OUTPUT_NANO = 750


def _requests(count: int, max_tokens: int = 32) -> list[Any]:
    return [
        {
            "custom_id": f"q{i}",
            "params": {
                "model": "claude-haiku-4-5-20251001",  # an alias: served and priced as haiku
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"[[reply: answer number {i}]]"}],
            },
        }
        for i in range(count)
    ]


async def _until(check: Callable[[], Awaitable[Any]], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _ended(client: anthropic.AsyncAnthropic, batch_id: str) -> MessageBatch:
    async def ended() -> MessageBatch | None:
        batch = await client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    result: MessageBatch = await _until(ended)
    return result


async def _records(database_url: str, batch_id: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
        database_url, options=f"-c search_path={SCHEMA},public"
    ) as conn:
        cur = await conn.execute(
            "SELECT u.request_id, u.model, u.route, u.service_tier, u.input_tokens,"
            " u.output_tokens, u.cost, t.amount FROM usage_records u"
            " JOIN transfers t ON t.reference = u.request_id AND t.kind = 'usage'"
            " WHERE u.request_id LIKE %s ORDER BY u.request_id",
            (batch_id + ":%",),
        )
        return list(await cur.fetchall())


async def test_a_batch_of_three_is_billed_once_at_the_batch_price(
    batch_env: BatchEnv, migrated: str
) -> None:
    edge = batch_env.start_edge()
    customer = await batch_env.customer("10.00")
    client = batch_env.sdk(edge, customer.key)
    before = await batch_env.account(customer.account_id)

    created = await client.messages.batches.create(requests=_requests(3))
    assert created.id.startswith("msgbatch_")
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 3
    held = await batch_env.account(customer.account_id)
    assert held.open_holds > 0 and held.balance == before.balance  # held, not yet billed

    ended = await _ended(client, created.id)
    assert ended.request_counts.succeeded == 3
    assert (
        ended.results_url == f"{edge.base_url}/api/proxy/v1/messages/batches/{created.id}/results"
    )
    results = [r async for r in await client.messages.batches.results(created.id)]
    assert sorted(r.custom_id for r in results) == ["q0", "q1", "q2"]
    expected = 0
    for result in results:
        assert result.result.type == "succeeded"
        usage = result.result.message.usage
        assert usage.service_tier == "batch"
        expected += (
            usage.input_tokens * HAIKU_BATCH_INPUT_NANO
            + usage.output_tokens * HAIKU_BATCH_OUTPUT_NANO
        )
    assert expected > 0

    after = await _until(
        lambda: _settled(batch_env, customer.account_id, before.balance - expected)
    )
    assert after.open_holds == 0  # the batch's hold is released
    records = await _records(migrated, created.id)
    assert len(records) == 3
    assert {(r[1], r[2], r[3]) for r in records} == {("claude-haiku-4-5", "batch", "batch")}
    assert sum(r[6] for r in records) == expected == sum(r[7] for r in records)
    for _, _, _, _, tokens_in, tokens_out, cost, _ in records:
        assert cost == tokens_in * HAIKU_BATCH_INPUT_NANO + tokens_out * HAIKU_BATCH_OUTPUT_NANO
    # Each request's priced record, as for any request (the id: batch id and custom_id).
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        record = await http.get(
            f"/v1/usage/requests/{created.id}:q0", headers={"x-api-key": customer.key}
        )
    assert record.status_code == 200, record.text
    assert record.json()["route"] == "batch"
    assert parse_usd(record.json()["cost_usd"]) == next(
        r[6] for r in records if r[0].endswith(":q0")
    )

    # Listed (newest first, paged like the upstream), retrieved again: still billed once.
    second = await client.messages.batches.create(requests=_requests(1))
    page = await client.messages.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more is True
    assert [b.id async for b in client.messages.batches.list(limit=1)] == [second.id, created.id]
    older = await client.messages.batches.list(after_id=second.id)
    assert [b.id for b in older.data] == [created.id] and older.has_more is False
    await _ended(client, second.id)
    await client.messages.batches.retrieve(created.id)
    assert len(await _records(migrated, created.id)) == 3


async def _settled(env: BatchEnv, account_id: str, balance: int) -> Any:
    account = await env.account(account_id)
    return account if account.balance == balance and account.open_holds == 0 else None


async def test_only_the_owner_sees_a_batch(batch_env: BatchEnv) -> None:
    edge = batch_env.start_edge()
    owner = await batch_env.customer("5.00")
    stranger = await batch_env.customer("5.00")
    mine = batch_env.sdk(edge, owner.key)
    theirs = batch_env.sdk(edge, stranger.key)
    created = await mine.messages.batches.create(requests=_requests(1))
    await _ended(mine, created.id)

    for attempt in (
        theirs.messages.batches.retrieve(created.id),
        theirs.messages.batches.cancel(created.id),
        theirs.messages.batches.delete(created.id),
    ):
        with pytest.raises(anthropic.NotFoundError) as caught:
            await attempt
        assert caught.value.status_code == 404
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        answer = await http.get(
            f"/v1/messages/batches/{created.id}/results", headers={"x-api-key": stranger.key}
        )
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"
    assert answer.json()["request_id"] == answer.headers["request-id"]
    assert (await theirs.messages.batches.list()).data == []
    assert [b.id for b in (await mine.messages.batches.list()).data] == [created.id]


async def test_cancel_releases_the_hold_and_bills_nothing(batch_env: BatchEnv) -> None:
    batch_env.slow_batches(30)
    edge = batch_env.start_edge()
    customer = await batch_env.customer("5.00")
    client = batch_env.sdk(edge, customer.key)
    before = await batch_env.account(customer.account_id)

    created = await client.messages.batches.create(requests=_requests(3, max_tokens=1000))
    held = await batch_env.account(customer.account_id)
    # The worst case of three requests at the batch price: every output token at 750 nano.
    assert held.open_holds >= 3 * 1000 * HAIKU_BATCH_OUTPUT_NANO
    canceling = await client.messages.batches.cancel(created.id)
    assert canceling.processing_status in ("canceling", "ended")
    ended = await _ended(client, created.id)
    assert ended.request_counts.canceled == 3
    after = await _until(lambda: _settled(batch_env, customer.account_id, before.balance))
    assert after.available == before.available


async def test_a_batch_the_balance_cannot_cover_is_refused_before_the_upstream(
    batch_env: BatchEnv,
) -> None:
    edge = batch_env.start_edge()
    customer = await batch_env.customer("0.01")
    client = batch_env.sdk(edge, customer.key)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.batches.create(requests=_requests(3, max_tokens=20_000))
    assert caught.value.status_code == 402
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "insufficient_balance"
    async with httpx.AsyncClient() as http:
        seen = (await http.get(batch_env.sim_url + "/_sim/requests")).json()["data"]
    assert not [r for r in seen if r["path"] == "/v1/messages/batches"]
    account = await batch_env.account(customer.account_id)
    assert account.open_holds == 0


async def test_a_batch_ends_and_is_billed_once_after_its_edge_restarts(
    batch_env: BatchEnv, migrated: str
) -> None:
    """The customer never polls. The edge that created the batch stops while it processes;
    two other replicas (the same upstream key) track it to its end: billed exactly once."""
    batch_env.slow_batches(1.0)
    first = batch_env.start_edge(edge_batch_tick_s=30.0)  # its tracker never gets to it
    customer = await batch_env.customer("5.00")
    client = batch_env.sdk(first, customer.key)
    before = await batch_env.account(customer.account_id)
    created = await client.messages.batches.create(requests=_requests(3))
    first.stop()

    replicas = [batch_env.start_edge(), batch_env.start_edge()]
    settled = await _until(lambda: _billed(migrated, created.id, 3))
    cost = sum(r[6] for r in settled)
    after = await _until(lambda: _settled(batch_env, customer.account_id, before.balance - cost))
    assert after.available == after.balance
    await asyncio.sleep(0.5)  # a few more tracker rounds on both replicas: nothing more billed
    assert len(await _records(migrated, created.id)) == 3
    assert (await batch_env.account(customer.account_id)).balance == before.balance - cost
    assert replicas[0].app.service.edge_id != replicas[1].app.service.edge_id


async def _billed(database_url: str, batch_id: str, count: int) -> list[tuple[Any, ...]] | None:
    records = await _records(database_url, batch_id)
    return records if len(records) == count else None


async def test_a_batch_larger_than_one_message_is_held_and_billed_whole(
    batch_env: BatchEnv, migrated: str
) -> None:
    """Requests go to billing in chunks (here of 2): five are staged in three messages and their
    results settled in three."""
    edge = batch_env.start_edge(edge_batch_chunk=2)
    customer = await batch_env.customer("10.00")
    client = batch_env.sdk(edge, customer.key)
    before = await batch_env.account(customer.account_id)
    created = await client.messages.batches.create(requests=_requests(5, max_tokens=4))
    held = await batch_env.account(customer.account_id)
    assert held.open_holds >= 5 * 4 * HAIKU_BATCH_OUTPUT_NANO
    await _ended(client, created.id)
    expected = 0
    async for line in await client.messages.batches.results(created.id):
        usage = line.result.message.usage  # type: ignore[union-attr]
        expected += (
            usage.input_tokens * HAIKU_BATCH_INPUT_NANO
            + usage.output_tokens * HAIKU_BATCH_OUTPUT_NANO
        )
    await _until(lambda: _settled(batch_env, customer.account_id, before.balance - expected))
    assert len(await _records(migrated, created.id)) == 5


async def test_a_malformed_batch_is_refused_naming_the_request(batch_env: BatchEnv) -> None:
    edge = batch_env.start_edge()
    customer = await batch_env.customer("5.00")
    bad_bodies: list[tuple[Any, str]] = [
        ({"requests": []}, "requests"),
        ({"requests": [*_requests(1), *_requests(1)]}, "requests.1.custom_id"),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params"),
        ({"requests": [{"custom_id": "a", "params": {"model": "gpt-9", "messages": []}}]},
         "requests.0.params"),
        ({"requests": [{"custom_id": "a", "params": {"model": "claude-haiku-4-5",
                                                      "max_tokens": 0, "messages": []}}]},
         "requests.0.params.max_tokens"),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=edge.base_url) as http:
        for body, where in bad_bodies:
            answer = await http.post(
                "/v1/messages/batches", json=body, headers={"x-api-key": customer.key}
            )
            assert answer.status_code == 400, answer.text
            error = answer.json()
            assert error["type"] == "error"
            assert error["error"]["type"] == "invalid_request_error"
            assert error["error"]["message"].startswith(where), (where, error)
        missing = await http.get(
            "/v1/messages/batches/msgbatch_nope", headers={"x-api-key": customer.key}
        )
        assert missing.status_code == 404
        unknown = await http.put("/v1/messages/batches/x", headers={"x-api-key": customer.key})
        assert unknown.status_code == 404
    account = await batch_env.account(customer.account_id)
    assert account.open_holds == 0


async def test_a_batch_no_upstream_takes_releases_its_hold(batch_env: BatchEnv) -> None:
    edge = batch_env.start_edge(upstream_url="http://127.0.0.1:9", edge_upstream_attempts=1)
    customer = await batch_env.customer("5.00")
    client = batch_env.sdk(edge, customer.key)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.batches.create(requests=_requests(2))
    assert caught.value.status_code == 502
    account = await batch_env.account(customer.account_id)
    assert account.open_holds == 0 and account.available == account.balance
    assert (await client.messages.batches.list()).data == []
