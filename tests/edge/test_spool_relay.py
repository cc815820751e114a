"""The spool's group commit (the appends of one loop iteration, one transaction) and the relay's
batches: a row is deleted only once JetStream acknowledged it; one without an ack, or refused,
stays and is published again under its id."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiapi_edge.spool import Row, Spool
from aiapi_shared.bus import Bus

from .support import wait_for

SUBJECT = "usage.v1.request.recorded"


async def _eventually(check: Callable[[], bool]) -> None:
    async def checked() -> bool:
        return check()

    await wait_for(checked)


def _ids_on_disk(directory: Path) -> list[str]:
    """What another process would find in the spool (the committed rows)."""
    with contextlib.closing(sqlite3.connect(directory / "usage.sqlite3")) as db:
        return [str(r[0]) for r in db.execute("SELECT event_id FROM spool ORDER BY seq")]


@contextlib.asynccontextmanager
async def _counted_spool(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Spool, list[list[Row]]]]:
    """An open spool, and the rows of each of its commits in order."""
    spool = Spool(directory, max_rows=100)
    await spool.open()
    commits: list[list[Row]] = []
    real = spool._commit

    def counting(inserts: list[Row], deletes: list[str]) -> None:
        commits.append(inserts)
        real(inserts, deletes)

    monkeypatch.setattr(spool, "_commit", counting)
    try:
        yield spool, commits
    finally:
        await spool.close()


async def test_the_appends_of_one_iteration_share_one_commit_and_each_returns_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _counted_spool(tmp_path, monkeypatch) as (spool, commits):
        seen_at_return: dict[str, list[str]] = {}

        async def append(event_id: str) -> None:
            await spool.append(event_id, SUBJECT, b"{}")
            seen_at_return[event_id] = _ids_on_disk(tmp_path)

        await asyncio.gather(*(append(f"req_{n}") for n in range(10)))
        assert [len(rows) for rows in commits] == [10]
        assert all(f"req_{n}" in seen_at_return[f"req_{n}"] for n in range(10))
        await spool.append("req_later", SUBJECT, b"{}")  # a later iteration: its own commit
        assert [len(rows) for rows in commits] == [10, 1] and spool.depth == 11


async def test_a_lone_append_commits_before_the_loop_turns_and_a_gathering_group_still_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _counted_spool(tmp_path, monkeypatch) as (spool, commits):
        turned: list[bool] = []
        asyncio.get_running_loop().call_soon(turned.append, True)
        await spool.append("req_lone", SUBJECT, b"{}", alone=True)
        # Committed (another process finds it) and handed to the relay, with no loop iteration
        # in between: nothing else ran before the caller could answer its client.
        assert turned == [] and _ids_on_disk(tmp_path) == ["req_lone"]
        assert [[row[0] for row in rows] for rows in commits] == [["req_lone"]]
        assert spool._fresh[-1][0] == "req_lone"
        # An append told it is alone while a group gathers joins that group: one commit.
        gathering = asyncio.ensure_future(spool.append("req_a", SUBJECT, b"{}"))
        await asyncio.sleep(0)
        await spool.append("req_b", SUBJECT, b"{}", alone=True)
        await gathering
        assert [[row[0] for row in rows] for rows in commits] == [["req_lone"], ["req_a", "req_b"]]
        assert spool.depth == 3


async def test_a_cancelled_append_neither_fails_the_others_nor_loses_its_event(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_rows=100)
    await spool.open()
    try:
        appends = [asyncio.ensure_future(spool.append(f"req_{n}", SUBJECT, b"{}")) for n in "abc"]
        await asyncio.sleep(0)  # all three wait for their iteration's commit
        appends[1].cancel()
        results = await asyncio.gather(*appends, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], asyncio.CancelledError)
        assert _ids_on_disk(tmp_path) == ["req_a", "req_b", "req_c"]
    finally:
        await spool.close()


async def test_a_row_whose_ack_did_not_come_stays_and_is_published_again_under_its_id(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_rows=100)
    await spool.open()
    rounds: list[list[str]] = []
    on_disk_at_retry: list[str] = []

    async def publish(rows: list[Row]) -> list[bool]:
        ids = [event_id for event_id, _, _ in rows]
        rounds.append(ids)
        if len(rounds) == 1:  # req_b's ack is lost
            return [event_id != "req_b" for event_id in ids]
        on_disk_at_retry.extend(_ids_on_disk(tmp_path))
        return [True] * len(rows)

    stop = asyncio.Event()
    relay = asyncio.ensure_future(spool.relay(publish, stop))
    try:
        await asyncio.gather(*(spool.append(f"req_{n}", SUBJECT, b"{}") for n in "abc"))
        await _eventually(lambda: len(rounds) >= 2 and spool.depth == 0)
    finally:
        stop.set()
        await relay
        await spool.close()
    assert rounds == [["req_a", "req_b", "req_c"], ["req_b"]]
    assert on_disk_at_retry == ["req_b"]  # the acknowledged rows went, the other one stayed
    assert _ids_on_disk(tmp_path) == []


async def test_a_relay_round_with_one_refused_message_keeps_it_until_the_stream_takes_it(
    tmp_path: Path, bus: Bus
) -> None:
    # A usage stream that holds two messages and refuses more (discard new, as when full).
    await bus.js.add_stream(name="USAGE", subjects=["usage.v1.>"], max_msgs=2, discard="new")
    spool = Spool(tmp_path, max_rows=100)
    await spool.open()

    async def publish(rows: list[Row]) -> list[bool]:
        return [failure is None for failure in await bus.publish_batch(rows, timeout_s=5.0)]

    stop = asyncio.Event()
    relay = asyncio.ensure_future(spool.relay(publish, stop))
    try:
        await asyncio.gather(*(spool.append(f"req_{n}", SUBJECT, n.encode()) for n in "abc"))
        await _eventually(lambda: _ids_on_disk(tmp_path) == ["req_c"])
        await asyncio.sleep(1.2)  # retried meanwhile (every 0.5 s), still refused, still kept
        assert _ids_on_disk(tmp_path) == ["req_c"] and spool.depth == 1
        room = (await bus.js.stream_info("USAGE")).config
        room.max_msgs = -1
        await bus.js.update_stream(room)
        await _eventually(lambda: spool.depth == 0)
    finally:
        stop.set()
        await relay
        await spool.close()
    info = await bus.js.stream_info("USAGE")
    assert info.state.messages == 3


async def test_an_append_to_a_closed_spool_raises_rather_than_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=10)
    await spool.open()
    await spool.close()
    with pytest.raises(AssertionError):
        await asyncio.wait_for(spool.append("req_late", SUBJECT, b"{}"), timeout=10)
