"""The shared outbox relay against real PostgreSQL and NATS: claims, failures, the hook, order."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from aiapi_shared.bus import Bus, BusUnavailable, Msg, StreamSpec
from aiapi_shared.db import open_pool
from aiapi_shared.outbox import Conn, IdleBackoff, Outbox, OutboxRow, OutboxTable
from psycopg_pool import AsyncConnectionPool

STREAM = StreamSpec("OUTBOXTEST", ("outboxtest.v1.>",))
SUBJECT = "outboxtest.v1.thing"
NO_STREAM_SUBJECT = "nostream.v1.thing"  # no stream takes it: the publish fails

# The two shapes the services use: billing's and accounts' (rows deleted once published), and
# payments' (rows kept, ``published_at`` set).
DELETED = OutboxTable("relaytest")
KEPT = OutboxTable("relaytest", keep_published=True, ordered=True)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE SCHEMA relaytest")
        await conn.execute(
            "CREATE TABLE relaytest.outbox (id bigserial PRIMARY KEY, event_id text NOT NULL"
            " UNIQUE, subject text NOT NULL, payload bytea NOT NULL, deposit_id text,"
            " created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz)"
        )
    async with open_pool(database_url, schema="relaytest", max_size=6) as opened:
        yield opened


async def _add(pool: AsyncConnectionPool, rows: list[tuple[str, str]]) -> None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
            [(event_id, subject, f'{{"id":"{event_id}"}}'.encode()) for event_id, subject in rows],
        )


async def _scalar(pool: AsyncConnectionPool, query: str) -> Any:
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
    assert row is not None
    return row[0]


async def _stored(bus: Bus) -> list[str]:
    """The Nats-Msg-Id of every message in the test stream, in stream order."""
    info = await bus.js.stream_info(STREAM.name)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(STREAM.name, seq)
        ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
    return ids


async def test_two_relays_at_once_publish_every_row_exactly_once(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    # A plain subscription sees every publish, duplicates included (the stream would hide them
    # inside its duplicate window): what it counts is what the relays sent.
    sent: Counter[str] = Counter()

    async def count(msg: Msg) -> None:
        sent[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1

    await bus.client.subscribe(SUBJECT, cb=count)
    events = [f"evt_{i:04d}" for i in range(600)]
    await _add(pool, [(e, SUBJECT) for e in events])
    first, second = Outbox(pool, bus, DELETED, batch=50), Outbox(pool, bus, DELETED, batch=50)
    moved = await asyncio.gather(first.drain(), second.drain(), first.drain(), second.drain())
    assert sum(moved) == len(events)
    await bus.client.flush()
    await _until(lambda: sum(sent.values()) >= len(events))
    assert sent == Counter(events)  # no row sent twice, none missed
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 0
    assert sorted(await _stored(bus)) == events


async def test_a_failed_publish_leaves_its_row_and_the_rows_after_it(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    await _add(pool, [("a", SUBJECT), ("b", NO_STREAM_SUBJECT), ("c", SUBJECT)])
    relay = Outbox(pool, bus, DELETED, publish_timeout_s=1.0)
    with pytest.raises(BusUnavailable):
        await relay.drain()
    left = await _column(pool, "SELECT event_id FROM outbox ORDER BY id")
    assert left == ["b", "c"]  # "c" may have been sent too: it is sent again, never skipped
    # Once the subject has a stream, the next pass takes the row it stopped at.
    await bus.ensure_stream(StreamSpec("NOSTREAMTEST", ("nostream.v1.>",)))
    assert await relay.drain() == 2
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 0
    assert await _stored(bus) == ["a", "c"]  # "c" stored once, whether sent once or twice


async def test_an_ordered_table_stops_at_the_failure_and_keeps_published_rows(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    await _add(pool, [("a", SUBJECT), ("b", NO_STREAM_SUBJECT), ("c", SUBJECT)])
    relay = Outbox(pool, bus, KEPT, publish_timeout_s=1.0)
    with pytest.raises(BusUnavailable):
        await relay.drain()
    assert await _stored(bus) == ["a"]  # "c" waits behind "b": the stream keeps the table's order
    pending = await _column(pool, "SELECT event_id FROM outbox WHERE published_at IS NULL")
    assert sorted(pending) == ["b", "c"]
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 3  # kept, not deleted
    async with pool.connection() as conn:
        await conn.execute("UPDATE outbox SET subject = %s WHERE event_id = 'b'", (SUBJECT,))
    assert await relay.drain() == 2
    assert await _stored(bus) == ["a", "b", "c"]


async def test_only_one_relay_at_a_time_works_an_ordered_table(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    await _add(pool, [(f"evt_{i:03d}", SUBJECT) for i in range(200)])
    relays = [Outbox(pool, bus, KEPT, batch=20) for _ in range(3)]
    await asyncio.gather(*(r.drain() for r in relays))
    while await _scalar(pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL"):
        await relays[0].drain()
    assert await _stored(bus) == [f"evt_{i:03d}" for i in range(200)]


async def test_the_hook_runs_after_the_publish_in_the_bookkeeping_transaction(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    await _add(pool, [("a", SUBJECT), ("b", SUBJECT), ("x", NO_STREAM_SUBJECT)])
    seen: list[tuple[list[str], list[str], int]] = []

    async def hook(conn: Conn, rows: list[OutboxRow]) -> None:
        # At this point the stream holds the rows, and this transaction marked them.
        cur = await conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
        marked = await cur.fetchone()
        seen.append(
            ([r.event_id for r in rows], await _stored(bus), int(marked[0]) if marked else 0)
        )
        await conn.execute(
            "INSERT INTO hooked (event_id) SELECT unnest(%s::text[])", ([r.event_id for r in rows],)
        )

    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE hooked (event_id text PRIMARY KEY)")
    relay = Outbox(pool, bus, KEPT, after_publish=hook, publish_timeout_s=1.0)
    with pytest.raises(BusUnavailable):
        await relay.drain()
    assert seen == [(["a", "b"], ["a", "b"], 2)]  # not for "x", whose publish failed
    assert await _column(pool, "SELECT event_id FROM hooked ORDER BY 1") == ["a", "b"]


async def test_a_failing_hook_undoes_the_bookkeeping_so_the_rows_go_again(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    await bus.ensure_stream(STREAM)
    await _add(pool, [("a", SUBJECT)])
    calls = Counter[str]()

    async def hook(conn: Conn, rows: list[OutboxRow]) -> None:
        calls["hook"] += 1
        if calls["hook"] == 1:
            raise RuntimeError("the hook's own database work failed")

    relay = Outbox(pool, bus, KEPT, after_publish=hook)
    with pytest.raises(RuntimeError):
        await relay.drain()
    assert await _column(pool, "SELECT event_id FROM outbox WHERE published_at IS NULL") == ["a"]
    assert await relay.drain() == 1
    assert calls["hook"] == 2
    assert await _stored(bus) == ["a"]  # published twice, stored once (Nats-Msg-Id)


async def _column(pool: AsyncConnectionPool, query: str) -> list[Any]:
    async with pool.connection() as conn:
        cur = await conn.execute(query)
        return [row[0] for row in await cur.fetchall()]


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _count_passes(relay: Outbox, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows each of ``relay``'s passes moved, in order (a list that grows as it runs)."""
    passes: list[int] = []
    real = relay.drain

    async def counted(**kwargs: Any) -> int:
        passes.append(await real(**kwargs))
        return passes[-1]

    monkeypatch.setattr(relay, "drain", counted)
    return passes


async def _stopped(relay: Outbox, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    relay.wake()
    await task


def test_the_poll_stretches_while_idle_and_shortens_when_work_is_found() -> None:
    backoff = IdleBackoff(0.2, 5.0)
    assert [backoff.after(found_work=False) for _ in range(6)] == [0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff.after(found_work=True) == 0.2
    assert backoff.after(found_work=False) == 0.4


async def test_an_idle_relay_polls_less_and_less_but_a_wake_relays_at_once(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.ensure_stream(STREAM)
    relay = Outbox(pool, bus, DELETED)
    passes = _count_passes(relay, monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, poll_s=0.01, idle_poll_s=60))
    try:
        await _until(lambda: len(passes) >= 8)  # 10 + 20 + ... + 1,280 ms: about 2.5 s
        idle_passes = len(passes)
        await asyncio.sleep(0.5)  # fifty short polls, or none at the stretched one
        assert len(passes) <= idle_passes + 1
        await _add(pool, [("evt_woken", SUBJECT)])
        relay.wake()
        await _until(lambda: 1 in passes)
    finally:
        await _stopped(relay, stop, task)


async def test_rows_a_wake_announced_do_not_shorten_the_poll_but_unannounced_ones_do(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit wakes its relay, so the pass it starts is no reason to poll again soon (that was
    an empty transaction after every batch); rows a poll finds nobody announced (a crashed
    replica's), and more may follow: the poll comes back to ``poll_s``."""
    await bus.ensure_stream(STREAM)
    relay = Outbox(pool, bus, DELETED)
    passes = _count_passes(relay, monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, poll_s=0.01, idle_poll_s=60))
    try:
        await _until(lambda: len(passes) >= 8)  # stretched past a second
        await _add(pool, [("evt_announced", SUBJECT)])
        relay.wake()
        await _until(lambda: 1 in passes)
        after_woken = len(passes)
        await asyncio.sleep(0.5)  # the short poll would have run about six passes by now
        assert len(passes) == after_woken
        await _add(pool, [("evt_unannounced", SUBJECT)])  # no wake: the poll finds it
        await _until(lambda: passes.count(1) == 2, timeout_s=30.0)
        after_found = len(passes)
        await _until(lambda: len(passes) >= after_found + 3)  # polled at 10, 20, 40 ms again
    finally:
        await _stopped(relay, stop, task)
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 0


async def test_a_stop_ends_the_wait_for_the_next_poll_at_once(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping service closes its NATS connection once its relay has returned: the relay
    must not wait out its poll (an hour here; billing's idle poll is 10 s) after a stop."""
    await bus.ensure_stream(STREAM)
    relay = Outbox(pool, bus, DELETED)
    passes = _count_passes(relay, monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, poll_s=3600, idle_poll_s=3600))
    await _until(lambda: len(passes) == 1)  # the first pass is done: it waits for the next
    stop.set()  # no wake: only the stop may end the wait
    await asyncio.wait_for(task, timeout=30)  # an hour's poll without the fix
    assert passes == [0]


# -- rows handed over by the process that committed them (billing's settlement) ---------------

HANDED = OutboxTable("relaytest")


async def _committed(pool: AsyncConnectionPool, event_ids: list[str]) -> list[OutboxRow]:
    """Commit rows as a settlement does, and what it hands over: the rows with their ids."""
    await _add(pool, [(e, SUBJECT) for e in event_ids])
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, event_id, subject, payload FROM outbox WHERE event_id = ANY(%s)"
            " ORDER BY id",
            (event_ids,),
        )
        return [OutboxRow(r[0], r[1], r[2], bytes(r[3])) for r in await cur.fetchall()]


async def _sends(bus: Bus) -> Counter[str]:
    """The test stream, and every publish on its subject from now on (duplicates included, by
    Nats-Msg-Id)."""
    await bus.ensure_stream(STREAM)
    sent: Counter[str] = Counter()

    async def count(msg: Msg) -> None:
        sent[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1

    await bus.client.subscribe(SUBJECT, cb=count)
    return sent


@contextlib.asynccontextmanager
async def _relaying(relay: Outbox, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """``relay`` running, its first pass (every pending row, at start) done, no poll for an
    hour; stopped at the end of the block, whatever it has not deleted left behind."""
    passes = _count_passes(relay, monkeypatch)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, poll_s=3600, idle_poll_s=3600))
    try:
        await _until(lambda: len(passes) == 1)
        yield
    finally:
        await _stopped(relay, stop, task)


async def test_rows_handed_over_go_out_without_a_pass_and_the_callers_transaction_deletes_them(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await _sends(bus)
    relay = Outbox(pool, bus, HANDED, orphan_after_s=60, forget_after_s=3600)
    async with _relaying(relay, monkeypatch):
        passes = _count_passes(relay, monkeypatch)  # from now on
        rows = await _committed(pool, ["h1", "h2", "h3"])
        relay.hand_over(rows)
        await _until(lambda: relay.relayed == {r.id for r in rows})
        assert passes == []  # published from memory: no claim, no transaction
        assert await _stored(bus) == ["h1", "h2", "h3"]
        assert await _scalar(pool, "SELECT count(*) FROM outbox") == 3  # not bookkept yet
        # The process's next transaction deletes them in passing.
        async with pool.connection() as conn, conn.transaction():
            bookkept = await relay.bookkeep_relayed(conn)
        relay.forgotten(bookkept)
        assert relay.relayed == frozenset()
        assert await _scalar(pool, "SELECT count(*) FROM outbox") == 0
    await bus.client.flush()
    assert sent == Counter({"h1": 1, "h2": 1, "h3": 1})


async def test_relayed_rows_no_transaction_took_are_deleted_by_the_relay_itself(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await _sends(bus)
    relay = Outbox(pool, bus, HANDED, orphan_after_s=60, forget_after_s=0.2)
    async with _relaying(relay, monkeypatch):
        relay.hand_over(await _committed(pool, ["f1", "f2"]))
        await _until(lambda: sent == Counter({"f1": 1, "f2": 1}))
        await _until_true(pool, "SELECT count(*) = 0 FROM outbox")
        assert relay.relayed == frozenset()
    await bus.client.flush()
    assert sent == Counter({"f1": 1, "f2": 1})


async def test_a_pass_that_claims_rows_already_relayed_deletes_them_without_a_second_publish(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await _sends(bus)
    relay = Outbox(pool, bus, HANDED, orphan_after_s=60, forget_after_s=3600)
    async with _relaying(relay, monkeypatch):
        relay.hand_over(await _committed(pool, ["p1", "p2"]))
        await _until(lambda: len(relay.relayed) == 2)
        await _add(pool, [("p3", SUBJECT)])  # another commit, announced: a full pass
        relay.wake()
        await _until_true(pool, "SELECT count(*) = 0 FROM outbox")
        assert relay.relayed == frozenset()
    await bus.client.flush()
    await _until(lambda: sum(sent.values()) >= 3)
    assert sent == Counter({"p1": 1, "p2": 1, "p3": 1})


async def test_committed_but_never_published_rows_go_out_once_after_a_crash(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process died between the settlement's commit and the publish: the rows are in the
    table, and the next relay's first pass takes them, however young."""
    sent = await _sends(bus)
    crashed = Outbox(pool, bus, HANDED, orphan_after_s=3600)
    crashed.hand_over(await _committed(pool, ["c1", "c2"]))  # its loop never ran
    restarted = Outbox(pool, bus, HANDED, orphan_after_s=3600)
    async with _relaying(restarted, monkeypatch):
        await _until_true(pool, "SELECT count(*) = 0 FROM outbox")
    await bus.client.flush()
    assert sent == Counter({"c1": 1, "c2": 1})
    assert await _stored(bus) == ["c1", "c2"]


async def test_published_but_not_deleted_rows_are_stored_once_after_a_crash(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process died between the publish and the deletion: the next relay publishes the rows
    again and the stream keeps one of each (Nats-Msg-Id)."""
    sent = await _sends(bus)
    crashed = Outbox(pool, bus, HANDED, orphan_after_s=3600, forget_after_s=3600)
    async with _relaying(crashed, monkeypatch):
        crashed.hand_over(await _committed(pool, ["d1", "d2"]))
        await _until(lambda: len(crashed.relayed) == 2)
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 2  # gone without deleting
    restarted = Outbox(pool, bus, HANDED, orphan_after_s=3600)
    assert await restarted.drain() == 2
    await bus.client.flush()
    await _until(lambda: sum(sent.values()) >= 4)
    assert sent == Counter({"d1": 2, "d2": 2})  # sent twice ...
    assert await _stored(bus) == ["d1", "d2"]  # ... stored once
    assert await _scalar(pool, "SELECT count(*) FROM outbox") == 0


async def test_a_poll_leaves_young_rows_to_the_replica_that_relayed_them(
    pool: AsyncConnectionPool, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica's poll must not publish again, again and again, the rows a busy replica
    has relayed and will delete with its next transaction; rows older than ``orphan_after_s``
    are a crashed one's, and the poll takes them."""
    sent = await _sends(bus)
    busy = Outbox(pool, bus, HANDED, orphan_after_s=30, forget_after_s=3600)
    other = Outbox(pool, bus, HANDED, orphan_after_s=30)
    async with _relaying(busy, monkeypatch):
        busy.hand_over(await _committed(pool, ["y1"]))
        await _until(lambda: len(busy.relayed) == 1)
        assert await other.drain(orphans_only=True) == 0
    # The busy one stopped and never came back: its row ages into an orphan.
    async with pool.connection() as conn:
        await conn.execute("UPDATE outbox SET created_at = created_at - interval '31 seconds'")
    assert await other.drain(orphans_only=True) == 1
    await bus.client.flush()
    await _until(lambda: sum(sent.values()) >= 2)
    assert sent == Counter({"y1": 2})
    assert await _stored(bus) == ["y1"]


async def _until_true(pool: AsyncConnectionPool, query: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await _scalar(pool, query):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in time: {query}")
        await asyncio.sleep(0.05)
