"""Key records in KV follow every change before the API answers; events leave through the
outbox with Nats-Msg-Id = event id; usage moves last-used times; billing's PlanPurchased switches
the plan even when the purchase reply was lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiapi_accounts.consumers import Consumers
from aiapi_shared import apikeys
from aiapi_shared.errors import PoisonMessage
from aiapi_shared.events.billing_v1 import PlanPurchased
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Usage, UsageRecorded

from tests.accounts.conftest import ADMIN, Running, stream_events


async def record(running: Running, key: str) -> KeyRecord:
    entry = await running.kv.get(apikeys.key_hash(key))
    assert entry.value is not None
    return KeyRecord.model_validate_json(entry.value)


async def test_issue_writes_an_active_record_with_the_plan_limits(running: Running) -> None:
    account_id = await running.new_account(plan="pro")
    key = await running.new_key(account_id)
    rec = await record(running, key["key"])
    assert (rec.key_id, rec.account_id, rec.plan) == (key["id"], account_id, "pro")
    assert (rec.key_status, rec.account_status, rec.usable) == ("active", "active", True)
    assert (rec.requests_per_minute, rec.tokens_per_minute) == (500, 2_000_000)


async def test_revoke_suspend_and_plan_change_rewrite_the_records_before_answering(
    running: Running,
) -> None:
    account_id = await running.new_account()
    first, second = await running.new_key(account_id, "a"), await running.new_key(account_id, "b")
    url = f"/admin/v1/accounts/{account_id}"
    await running.admin.delete(f"{url}/keys/{first['id']}", headers=ADMIN)
    assert (await record(running, first["key"])).key_status == "revoked"
    assert (await record(running, second["key"])).usable

    await running.admin.patch(url, json={"status": "suspended"}, headers=ADMIN)
    assert (await record(running, second["key"])).account_status == "suspended"
    assert not (await record(running, second["key"])).usable

    await running.admin.patch(url, json={"status": "active"}, headers=ADMIN)
    await running.admin.patch(url, json={"plan": "pro"}, headers=ADMIN)
    rec = await record(running, second["key"])
    assert (rec.plan, rec.requests_per_minute, rec.usable) == ("pro", 500, True)
    # The revoked key stays revoked whatever else changes.
    assert (await record(running, first["key"])).key_status == "revoked"


async def test_changes_are_published_once_each_with_the_event_id_as_msg_id(
    running: Running,
) -> None:
    account_id = await running.new_account()
    key = await running.new_key(account_id, "ci")
    url = f"/admin/v1/accounts/{account_id}"
    await running.admin.patch(url, json={"plan": "pro"}, headers=ADMIN)
    await running.admin.patch(url, json={"plan": "pro"}, headers=ADMIN)  # no change, no event
    await running.admin.patch(url, json={"status": "suspended"}, headers=ADMIN)
    await running.admin.delete(f"{url}/keys/{key['id']}", headers=ADMIN)
    events = await stream_events(running.bus)
    assert [s for s, _, _ in events] == [
        "accounts.v1.account.created",
        "accounts.v1.key.issued",
        "accounts.v1.plan.changed",
        "accounts.v1.account.status_changed",
        "accounts.v1.key.revoked",
    ]
    assert all(msg_id == body["event_id"] for _, msg_id, body in events)
    assert events[1][2]["key_id"] == key["id"]
    assert events[1][2]["name"] == "ci"
    assert (events[2][2]["plan"], events[2][2]["previous_plan"]) == ("pro", "basic")
    assert events[3][2]["status"] == "suspended"


async def poll(check: object, *, attempts: int = 100) -> None:
    """Wait (bounded) for an async predicate to hold."""
    for _ in range(attempts):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_usage_events_move_the_keys_last_used_time(running: Running) -> None:
    account_id = await running.new_account()
    key = await running.new_key(account_id)
    finished = datetime(2026, 11, 27, 12, 0, 2, tzinfo=UTC)
    event = UsageRecorded(
        event_id="req_last_used",
        request_id="req_last_used",
        account_id=account_id,
        key_id=key["id"],
        model="claude-haiku-4-5",
        requested_model="claude-haiku-4-5",
        plan="basic",
        route="anthropic",
        started_at=finished - timedelta(seconds=2),
        finished_at=finished,
        outcome="ok",
        status_code=200,
        usage=Usage(input_tokens=3, output_tokens=5),
    )
    await running.bus.publish_event(event)

    async def seen() -> bool:
        listing = await running.service.ctx.accounts.list_keys(account_id)  # type: ignore[union-attr]
        return listing[0].last_used_at == finished

    await poll(seen)


async def test_a_plan_purchase_event_switches_the_plan_without_the_reply(running: Running) -> None:
    account_id = await running.new_account()
    key = await running.new_key(account_id)
    await running.bus.publish_event(
        PlanPurchased(account_id=account_id, plan="pro", price=19 * 10**9)
    )

    async def switched() -> bool:
        return (await record(running, key["key"])).plan == "pro"

    await poll(switched)
    account = await running.service.ctx.accounts.get(account_id)  # type: ignore[union-attr]
    assert account.plan == "pro"
    # A purchase for an account accounts does not know is acknowledged and ignored.
    await running.bus.publish_event(PlanPurchased(account_id="acc_unknown", plan="pro", price=1))


class _RecordingAccounts:
    """Stands in for the accounts commands only to count the writes the consumer asks for."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, datetime]] = []

    async def note_key_used(self, key_id: str, when: datetime, resolution_s: int) -> None:
        self.writes.append((key_id, when))


class _Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data


async def test_last_used_is_written_at_most_once_per_resolution_per_key() -> None:
    recorder = _RecordingAccounts()
    consumers = Consumers(None, recorder, last_used_resolution_s=60)  # type: ignore[arg-type]
    start = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

    def event(key_id: str, seconds: int) -> bytes:
        finished = start + timedelta(seconds=seconds)
        return UsageRecorded(
            event_id=f"req_{key_id}_{seconds}",
            request_id=f"req_{key_id}_{seconds}",
            account_id="acc_1",
            key_id=key_id,
            model="claude-haiku-4-5",
            requested_model="claude-haiku-4-5",
            plan="basic",
            route="anthropic",
            started_at=finished,
            finished_at=finished,
            outcome="ok",
            status_code=200,
            usage=Usage(input_tokens=1, output_tokens=1),
        ).to_json()

    for key_id, seconds in [("k1", 0), ("k1", 10), ("k2", 20), ("k1", 59), ("k1", 61), ("k2", 30)]:
        await consumers.on_usage(_Msg(event(key_id, seconds)))  # type: ignore[arg-type]
    assert recorder.writes == [
        ("k1", start),
        ("k2", start + timedelta(seconds=20)),
        ("k1", start + timedelta(seconds=61)),
    ]


async def revisions(running: Running, keys: list[dict[str, str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in keys:
        entry = await running.kv.get(apikeys.key_hash(key["key"]))
        assert entry.revision is not None
        found[key["id"]] = entry.revision
    return found


async def test_a_key_change_rewrites_only_that_keys_record(running: Running) -> None:
    account_id = await running.new_account()
    keys = [await running.new_key(account_id, f"k{n}") for n in range(5)]
    before = await revisions(running, keys)
    url = f"/admin/v1/accounts/{account_id}"

    revoked = await running.admin.delete(f"{url}/keys/{keys[2]['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    after_revoke = await revisions(running, keys)
    assert (await record(running, keys[2]["key"])).key_status == "revoked"
    assert after_revoke[keys[2]["id"]] > before[keys[2]["id"]]
    others = [k["id"] for n, k in enumerate(keys) if n != 2]
    assert {k: after_revoke[k] for k in others} == {k: before[k] for k in others}

    extra = await running.new_key(account_id, "extra")
    assert await revisions(running, keys) == after_revoke
    assert (await record(running, extra["key"])).usable

    # A plan change concerns every record (each carries the plan and its limits).
    await running.admin.patch(url, json={"plan": "pro"}, headers=ADMIN)
    after_plan = await revisions(running, [*keys, extra])
    assert all(after_plan[k["id"]] > after_revoke.get(k["id"], 0) for k in keys)
    assert (await record(running, keys[0]["key"])).plan == "pro"


async def test_last_used_reads_only_the_key_and_the_time_of_a_usage_event() -> None:
    """The consumer validates the two fields it uses, not the whole event (billing judges the
    rest); a body that does not give them is poison."""
    recorder = _RecordingAccounts()
    consumers = Consumers(None, recorder, last_used_resolution_s=60)  # type: ignore[arg-type]
    newer = {
        "event_id": "req_newer",
        "key_id": "k_newer",
        "finished_at": "2026-11-27T12:00:00.250000Z",
        "route": "a-route-of-a-later-version",
        "usage": {"input_tokens": "not what this version reads"},
    }
    await consumers.on_usage(_Msg(json.dumps(newer).encode()))  # type: ignore[arg-type]
    assert recorder.writes == [("k_newer", datetime(2026, 11, 27, 12, 0, 0, 250000, tzinfo=UTC))]
    for body in (b"not json", b'{"key_id": "k"}', b'{"finished_at": "2026-11-27T12:00:00Z"}'):
        with pytest.raises(PoisonMessage):
            await consumers.on_usage(_Msg(body))  # type: ignore[arg-type]
