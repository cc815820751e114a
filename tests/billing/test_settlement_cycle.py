"""A settlement batch's cycle after its commit: its events published from memory (their outbox
rows deleted by the next settlement's transaction, or by the relay), its balance snapshots
written from the totals it wrote (no read-back), and a snapshot's version never going back."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg
import pytest
from aiapi_billing.notices import Totals
from aiapi_billing.outbox import SnapshotWriter
from aiapi_billing.service import SCHEMA, Service
from aiapi_shared.bus import Bus, KeyNotFound, KeyValue, Msg
from aiapi_shared.db import open_pool
from aiapi_shared.events import RequestPriced
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, BalanceSnapshot

from tests.billing.conftest import credit, eventually, scalar, usage_event


async def _snapshot(kv: KeyValue, account_id: str) -> BalanceSnapshot | None:
    try:
        entry = await kv.get(account_id)
    except KeyNotFound:
        return None
    return BalanceSnapshot.model_validate_json(entry.value or b"")


async def _snapshots_match_rows(
    kv: KeyValue, db: psycopg.AsyncConnection[Any], account_ids: list[str]
) -> bool:
    """Each account's snapshot says what its row says, at the row's version."""
    for account_id in account_ids:
        cur = await db.execute(
            "SELECT credits - debits, credits - debits - holds, version FROM accounts"
            " WHERE account_id = %s",
            (account_id,),
        )
        row = await cur.fetchone()
        snap = await _snapshot(kv, account_id)
        if row is None or snap is None or (snap.balance, snap.available, snap.version) != row:
            return False
    return True


async def _stored_priced(bus: Bus) -> Counter[str]:
    """The request ids of the RequestPriced the BILLING stream holds, each as often as stored."""
    info = await bus.js.stream_info("BILLING")
    found: Counter[str] = Counter()
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg("BILLING", seq)
        if msg.subject == RequestPriced.subject:
            found[RequestPriced.model_validate_json(msg.data or b"").request_id] += 1
    return found


async def test_a_settled_batch_goes_out_with_no_relay_pass_and_no_read_back(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = ["acc_c0", "acc_c1", "acc_c2"]
    for account_id in accounts:
        await credit(bus, account_id, "10.00")
    kv = await bus.ensure_kv(BALANCES_BUCKET)
    # The credits' events and snapshots go the usual way (a relay pass, a read): let them.
    await eventually(lambda: _snapshots_match_rows(kv, db, accounts))
    await eventually(lambda: scalar(db, "SELECT count(*) = 0 FROM outbox"))
    relay, snapshots = billing.relay, billing.snapshots
    assert relay is not None and snapshots is not None
    full_passes: list[int] = []
    real_drain = relay.drain

    async def drain(*, orphans_only: bool = False) -> int:
        moved = await real_drain(orphans_only=orphans_only)
        if not orphans_only or moved:
            full_passes.append(moved)
        return moved

    reads: list[str] = []
    real_write = snapshots.write

    async def write(account_ids: list[str], settled: dict[str, Totals] | None = None) -> None:
        reads.extend(account_ids)
        await real_write(account_ids, settled)

    monkeypatch.setattr(relay, "drain", drain)
    monkeypatch.setattr(snapshots, "write", write)
    sent: Counter[str] = Counter()

    async def count(msg: Msg) -> None:
        sent[RequestPriced.model_validate_json(msg.data).request_id] += 1

    await bus.client.subscribe(RequestPriced.subject, cb=count)

    events = [usage_event(accounts[i % 3], output_tokens=100 + i) for i in range(30)]
    for event in events:
        await bus.publish_event(event)
    # A duplicate delivery (another message id): settled once, nothing announced again.
    await bus.publish(events[0].subject, events[0].to_json(), "a-redelivery")
    await eventually(
        lambda: (
            billing.consumers is not None
            and billing.consumers.counters.settled == len(events)
            and billing.consumers.counters.duplicates == 1
        )
    )
    expected = Counter(e.request_id for e in events)
    await eventually(lambda: _snapshots_match_rows(kv, db, accounts))
    await eventually(lambda: sent == expected)
    await eventually(lambda: scalar(db, "SELECT count(*) = 0 FROM outbox"))
    assert await _stored_priced(bus) == expected
    assert full_passes == []  # published from memory: no claim transaction
    assert reads == []  # the settled totals were handed over: no read-back
    await bus.client.flush()
    assert sent == expected  # each published once


async def test_a_snapshot_never_goes_back_to_an_older_version(migrated: str, bus: Bus) -> None:
    kv = await bus.ensure_kv(BALANCES_BUCKET)
    pool = open_pool(migrated, schema=SCHEMA, max_size=2)
    await pool.open()
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO accounts (account_id, credits, debits, version)"
                " VALUES ('acc_v', 1000, 900, 9)"
            )
        mine, replica = SnapshotWriter(pool, kv), SnapshotWriter(pool, kv)

        async def stored() -> tuple[int, int]:
            snap = await _snapshot(kv, "acc_v")
            assert snap is not None
            return snap.version, snap.balance

        await mine.write([], {"acc_v": Totals(1000, 100, 0, 5)})
        assert await stored() == (5, 900)
        # An older batch's totals arriving late: the writer knows it stored a newer one.
        await mine.write([], {"acc_v": Totals(1000, 50, 0, 3)})
        assert await stored() == (5, 900)
        # Another replica stored a newer version: this writer's conditional write fails, it
        # reads, compares and leaves the newer one.
        await replica.write([], {"acc_v": Totals(1000, 300, 0, 7)})
        await mine.write([], {"acc_v": Totals(1000, 200, 0, 6)})
        assert await stored() == (7, 700)
        # Handed totals and a mark for the same account in one gathering: the mark says the row
        # changed since (a hold, a lease), so the row is read (version 9), not the totals.
        stop = asyncio.Event()
        task = asyncio.create_task(mine.run(stop))
        try:
            mine.settled({"acc_v": Totals(1000, 400, 0, 8)})
            mine.mark("acc_v")
            await eventually(lambda: _version_is(kv, 9))
            mine.settled({"acc_v": Totals(1000, 400, 0, 8)})  # late again: refused
            await asyncio.sleep(0.3)
            assert await stored() == (9, 100)
        finally:
            stop.set()
            await task
    finally:
        await pool.close()


async def _version_is(kv: KeyValue, version: int) -> bool:
    snap = await _snapshot(kv, "acc_v")
    return snap is not None and snap.version == version


async def test_a_snapshot_whose_write_failed_is_written_again_without_another_change(
    migrated: str, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    # The writer's read of a marked account fails (its pool's only connection is taken: the
    # pool times out, as with PostgreSQL away); once it can read again, the account is written
    # with no further change to it.
    kv = await bus.ensure_kv(BALANCES_BUCKET)
    pool = open_pool(migrated, schema=SCHEMA, max_size=1)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO accounts (account_id, credits, debits, version)"
            " VALUES ('acc_r', 1000, 100, 3)"
        )
    writer = SnapshotWriter(pool, kv, gather_s=0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        async with pool.connection():  # held: the writer's read finds no connection
            writer.mark("acc_r")
            await eventually(lambda: "snapshot writer paused" in caplog.text)
            assert await _snapshot(kv, "acc_r") is None

        async def written() -> bool:
            snap = await _snapshot(kv, "acc_r")
            return snap is not None and (snap.balance, snap.version) == (900, 3)

        await eventually(written)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await pool.close()
