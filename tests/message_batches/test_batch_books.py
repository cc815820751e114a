"""Billing's side of Message Batches on its own subjects (the edge's requests, made directly):
the hold, a retried open, the tracker's lease, settlement in chunks and exactly once, abandoned
batches, and what an unknown model or another account gets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiapi_billing.service import SCHEMA
from aiapi_shared import batches_api as api
from aiapi_shared.bus import Bus, ErrorReply
from aiapi_shared.events.usage_v1 import Usage

from tests.message_batches.conftest import BatchEnv

SNAPSHOT: dict[str, Any] = {"id": "msgbatch_up", "processing_status": "ended"}


def _item(
    custom_id: str, max_tokens: int = 100, model: str = "claude-haiku-4-5"
) -> api.BatchItemAsk:
    return api.BatchItemAsk(
        custom_id=custom_id,
        requested_model=model,
        model=model,
        estimated_input_tokens=10,
        max_tokens=max_tokens,
    )


async def _call(bus: Bus, subject: str, request: Any, reply: Any) -> Any:
    return await bus.call(subject, request, reply, timeout_s=10.0)


async def _open(
    env: BatchEnv,
    account_id: str,
    batch_id: str,
    *items: api.BatchItemAsk,
    final: bool = True,
    total: int | None = None,
) -> Any:
    command = api.BatchOpenCommand(
        batch_id=batch_id,
        account_id=account_id,
        key_id="key_1",
        plan="basic",
        started_at=datetime.now(UTC),
        items=list(items),
        final=final,
        total_items=len(items) if total is None else total,
    )
    return await _call(env.bus, api.BATCH_OPEN_SUBJECT, command, api.BatchOpenReply)


async def _bind(env: BatchEnv, batch_id: str, upstream_key: str = "fp-a") -> api.BatchRecord:
    command = api.BatchBindCommand(
        batch_id=batch_id,
        upstream_id="up_" + batch_id,
        upstream_key=upstream_key,
        snapshot={"id": "up_" + batch_id, "processing_status": "in_progress"},
    )
    record: api.BatchRecord = await _call(env.bus, api.BATCH_BIND_SUBJECT, command, api.BatchRecord)
    return record


async def _abandon(env: BatchEnv, batch_id: str) -> None:
    command = api.BatchAbandonCommand(batch_id=batch_id)
    await _call(env.bus, api.BATCH_ABANDON_SUBJECT, command, api.BatchSettleReply)


def _succeeded(custom_id: str, tokens_in: int = 10, tokens_out: int = 20) -> api.BatchItemResult:
    return api.BatchItemResult(
        custom_id=custom_id,
        outcome="succeeded",
        usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, service_tier="standard"),
    )


async def _settle(
    env: BatchEnv, batch_id: str, results: list[api.BatchItemResult], *, final: bool = True
) -> api.BatchSettleReply:
    command = api.BatchSettleCommand(
        batch_id=batch_id, snapshot=SNAPSHOT, results=results, final=final
    )
    reply: api.BatchSettleReply = await _call(
        env.bus, api.BATCH_SETTLE_SUBJECT, command, api.BatchSettleReply
    )
    return reply


async def test_the_hold_is_the_worst_case_at_the_batch_price_and_taken_once(
    batch_env: BatchEnv,
) -> None:
    customer = await batch_env.customer("1.00")
    # Haiku on Basic at the batch tier: 150 nano per input token, 750 per output token.
    opened = await _open(batch_env, customer.account_id, "msgbatch_hold", _item("a"), _item("b"))
    assert opened.decision == "admit"
    assert opened.hold_amount == 2 * (10 * 150 + 100 * 750)
    again = await _open(batch_env, customer.account_id, "msgbatch_hold", _item("a"), _item("b"))
    assert again.decision == "admit"
    account = await batch_env.account(customer.account_id)
    assert account.open_holds == opened.hold_amount  # a retried open holds nothing more
    await _abandon(batch_env, "msgbatch_hold")
    assert (await batch_env.account(customer.account_id)).open_holds == 0


async def test_a_batch_staged_in_chunks_is_held_for_all_its_requests(batch_env: BatchEnv) -> None:
    customer = await batch_env.customer("1.00")
    staged = await _open(batch_env, customer.account_id, "msgbatch_big", _item("a"), final=False)
    assert staged.decision == "staged"
    assert (await batch_env.account(customer.account_id)).open_holds == 0  # nothing held yet
    opened = await _open(batch_env, customer.account_id, "msgbatch_big", _item("b"), total=2)
    assert (opened.decision, opened.hold_amount) == ("admit", 2 * (10 * 150 + 100 * 750))
    with pytest.raises(ErrorReply):  # a count that disagrees with what was staged
        await _open(batch_env, customer.account_id, "msgbatch_odd", _item("a"), total=3)
    await _abandon(batch_env, "msgbatch_big")
    assert (await batch_env.account(customer.account_id)).open_holds == 0


async def test_an_unsold_model_or_a_short_balance_is_refused(batch_env: BatchEnv) -> None:
    customer = await batch_env.customer("0.0001")
    unpriced = await _open(
        batch_env, customer.account_id, "msgbatch_x", _item("a", model="claude-unknown-9")
    )
    assert unpriced.decision == "unpriced"
    short = await _open(batch_env, customer.account_id, "msgbatch_y", _item("a", 64_000))
    assert short.decision == "insufficient_balance"
    assert (await batch_env.account(customer.account_id)).open_holds == 0


async def test_a_claim_leases_a_batch_to_one_edge_that_holds_its_key(batch_env: BatchEnv) -> None:
    customer = await batch_env.customer("1.00")
    await _open(batch_env, customer.account_id, "msgbatch_lease", _item("a"))
    await _bind(batch_env, "msgbatch_lease", upstream_key="fp-a")

    def claim(edge: str, keys: list[str]) -> api.BatchClaimCommand:
        return api.BatchClaimCommand(edge_id=edge, upstream_keys=keys, lease_s=30)

    async def claimed(edge: str, keys: list[str]) -> list[str]:
        reply = await _call(
            batch_env.bus, api.BATCH_CLAIM_SUBJECT, claim(edge, keys), api.BatchListReply
        )
        return [r.batch_id for r in reply.data if r.batch_id == "msgbatch_lease"]

    assert await claimed("edge-b", ["fp-other"]) == []  # cannot read it: never offered
    assert await claimed("edge-a", ["fp-a"]) == ["msgbatch_lease"]
    assert await claimed("edge-c", ["fp-a"]) == []  # leased to edge-a
    update = api.BatchUpdateCommand(
        batch_id="msgbatch_lease", snapshot={"processing_status": "in_progress"}, next_poll_s=0
    )
    await _call(batch_env.bus, api.BATCH_UPDATE_SUBJECT, update, api.BatchSettleReply)
    assert await claimed("edge-c", ["fp-a"]) == ["msgbatch_lease"]  # the lease ended with it
    await _settle(batch_env, "msgbatch_lease", [])


async def test_settlement_in_chunks_bills_each_request_once(batch_env: BatchEnv) -> None:
    customer = await batch_env.customer("1.00")
    before = await batch_env.account(customer.account_id)
    items = [_item(f"r{i}") for i in range(4)]
    await _open(batch_env, customer.account_id, "msgbatch_chunks", *items)
    await _bind(batch_env, "msgbatch_chunks")
    first = await _settle(
        batch_env, "msgbatch_chunks", [_succeeded("r0"), _succeeded("r1")], final=False
    )
    assert first.billed_items == 2 and not first.already_settled
    held = await batch_env.account(customer.account_id)
    assert held.open_holds > 0  # the hold stays until the final chunk
    rest = [
        _succeeded("r1"),  # again (a retried chunk): not billed twice
        api.BatchItemResult(custom_id="r2", outcome="errored"),
        api.BatchItemResult(custom_id="r3", outcome="expired"),
        _succeeded("nobody"),  # not a request of this batch: ignored
    ]
    final = await _settle(batch_env, "msgbatch_chunks", rest)
    per_request = 10 * 150 + 20 * 750
    assert (final.billed_items, final.cost) == (2, 2 * per_request)
    assert await _settle(batch_env, "msgbatch_chunks", [_succeeded("r2")]) == api.BatchSettleReply(
        billed_items=0, cost=2 * per_request, already_settled=True
    )
    after = await batch_env.account(customer.account_id)
    assert after.balance == before.balance - 2 * per_request
    assert after.open_holds == 0


async def test_another_account_finds_no_batch(batch_env: BatchEnv) -> None:
    owner = await batch_env.customer("1.00")
    other = await batch_env.customer("1.00")
    await _open(batch_env, owner.account_id, "msgbatch_mine", _item("a"))
    await _bind(batch_env, "msgbatch_mine")
    query = api.BatchQuery(account_id=other.account_id, batch_id="msgbatch_mine")
    with pytest.raises(ErrorReply) as caught:
        await _call(batch_env.bus, api.BATCH_GET_SUBJECT, query, api.BatchRecord)
    assert caught.value.error.status == 404
    page = api.BatchListQuery(account_id=other.account_id)
    assert (await _call(batch_env.bus, api.BATCH_LIST_SUBJECT, page, api.BatchListReply)).data == []
    await _settle(batch_env, "msgbatch_mine", [])


async def test_a_batch_its_edge_never_bound_is_abandoned_and_its_hold_released(
    batch_env: BatchEnv, migrated: str
) -> None:
    """The edge stopped between the hold and the upstream's answer: the next claim, once the
    opening timeout has passed, releases the hold."""
    customer = await batch_env.customer("1.00")
    await _open(batch_env, customer.account_id, "msgbatch_orphan", _item("a"))
    assert (await batch_env.account(customer.account_id)).open_holds > 0
    async with await psycopg.AsyncConnection.connect(
        migrated, autocommit=True, options=f"-c search_path={SCHEMA},public"
    ) as conn:
        await conn.execute(
            "UPDATE batches SET created_at = now() - interval '1 hour'"
            " WHERE batch_id = 'msgbatch_orphan'"
        )
    claim = api.BatchClaimCommand(edge_id="edge-a", upstream_keys=["fp-a"])
    await _call(batch_env.bus, api.BATCH_CLAIM_SUBJECT, claim, api.BatchListReply)
    assert (await batch_env.account(customer.account_id)).open_holds == 0
    query = api.BatchQuery(account_id=customer.account_id, batch_id="msgbatch_orphan")
    with pytest.raises(ErrorReply):
        await _call(batch_env.bus, api.BATCH_GET_SUBJECT, query, api.BatchRecord)
