"""The spool's durability modes: an append is committed when it returns, with or without fsync."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from aiapi_edge.spool import Row, Spool


@pytest.mark.parametrize("fsync", [False, True])
async def test_an_appended_event_is_there_for_the_next_process(tmp_path: Path, fsync: bool) -> None:
    first = Spool(tmp_path, max_rows=10, fsync=fsync, sync_interval_s=0.02)
    await first.open()
    await asyncio.gather(
        *(first.append(f"req_{n}", "usage.v1.request.recorded", b"{}") for n in range(3))
    )
    assert first.depth == 3
    # A second reader (as after a crash and restart) sees the rows without the first closing.
    second = Spool(tmp_path, max_rows=10)
    await second.open()
    try:
        assert second.depth == 3
    finally:
        await second.close()
        await first.close()


async def test_acknowledged_events_are_deleted_and_the_spool_reopens_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=10, sync_interval_s=0.02)
    await spool.open()
    published: list[str] = []
    stop = asyncio.Event()

    async def publish(rows: list[Row]) -> list[bool]:
        published.extend(event_id for event_id, _, _ in rows)
        return [True] * len(rows)

    relay = asyncio.ensure_future(spool.relay(publish, stop))
    await spool.append("req_a", "usage.v1.request.recorded", b"{}")
    await spool.append("req_b", "usage.v1.request.recorded", b"{}")
    for _ in range(200):  # bounded: the relay deletes acknowledged rows within ~0.5 s
        if spool.depth == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await relay
    await spool.close()
    assert published == ["req_a", "req_b"] and spool.depth == 0
    reopened = Spool(tmp_path, max_rows=10)
    await reopened.open()
    assert reopened.depth == 0
    await reopened.close()


async def test_an_idle_spool_does_not_wake_at_the_sync_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, max_rows=10, sync_interval_s=0.01, space_check_s=60)
    measured: list[bool] = []
    real = spool.check_space

    def counting() -> bool:
        measured.append(real())
        return measured[-1]

    monkeypatch.setattr(spool, "check_space", counting)
    await spool.open()  # measures once
    try:
        await asyncio.sleep(0.3)  # thirty sync intervals with nothing committed
        assert len(measured) == 1
    finally:
        await spool.close()


async def test_a_commit_wakes_the_idle_sync_loop_for_its_checkpoint(tmp_path: Path) -> None:
    # Idle, the loop sleeps for space_check_s; a commit must still be checkpointed (fsync'd)
    # within sync_interval_s, not a minute later.
    spool = Spool(tmp_path, max_rows=10, sync_interval_s=0.01, space_check_s=60)
    await spool.open()
    try:
        await asyncio.sleep(0.05)  # the loop is asleep
        await spool.append("req_a", "usage.v1.request.recorded", b"{}")
        assert spool._unsynced
        for _ in range(500):  # bounded
            if not spool._unsynced:
                break
            await asyncio.sleep(0.01)
        assert not spool._unsynced
    finally:
        await spool.close()


async def test_a_restarted_relay_publishes_in_append_order_after_the_newest_row_went(
    tmp_path: Path,
) -> None:
    """``seq`` is a plain rowid (no AUTOINCREMENT): when the newest row is gone (acknowledged),
    the next append may get its number again, and must still come after every row left."""
    first = Spool(tmp_path, max_rows=10)
    await first.open()
    for name in ("req_a", "req_b", "req_c"):
        await first.append(name, "usage.v1.request.recorded", b"{}")
    first._acked.append("req_c")  # as the relay does once JetStream acknowledged it
    await first.append("req_d", "usage.v1.request.recorded", b"{}")  # deletes req_c, adds req_d
    assert first.depth == 3
    await first.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "usage.sqlite3")) as db:  # req_c's number
        assert db.execute("SELECT seq FROM spool WHERE event_id = 'req_d'").fetchone() == (3,)

    second = Spool(tmp_path, max_rows=10)  # a restart: the rows left are read from the table
    await second.open()
    published: list[str] = []
    stop = asyncio.Event()

    async def publish(rows: list[Row]) -> list[bool]:
        published.extend(event_id for event_id, _, _ in rows)
        return [True] * len(rows)

    relay = asyncio.ensure_future(second.relay(publish, stop))
    for _ in range(200):  # bounded
        if len(published) >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await relay
    await second.close()
    assert published == ["req_a", "req_b", "req_d"]


def count_checkpoints(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many checkpoints (two fsyncs each) the spool's sync thread makes (the real ones)."""
    made = [0]
    real = spool._checkpoint_in_thread

    def counting() -> None:
        made[0] += 1
        real()

    monkeypatch.setattr(spool, "_checkpoint_in_thread", counting)
    return made


async def test_events_jetstream_acknowledged_in_time_need_no_checkpoint_the_others_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A power cut can only lose what the last checkpoint did not cover; an event already in
    # JetStream does not need covering. One never acknowledged is checkpointed.
    spool = Spool(tmp_path, max_rows=100, sync_interval_s=0.05, space_check_s=60)
    made = count_checkpoints(spool, monkeypatch)
    await spool.open()
    stop = asyncio.Event()
    refused = {"req_refused"}

    async def publish(rows: list[Row]) -> list[bool]:
        return [event_id not in refused for event_id, _, _ in rows]

    relay = asyncio.ensure_future(spool.relay(publish, stop))
    try:
        for n in range(10):  # ten events over about ten sync intervals, each acknowledged
            await spool.append(f"req_{n}", "usage.v1.request.recorded", b"{}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert made[0] == 0 and not spool._unsynced
        await spool.append("req_refused", "usage.v1.request.recorded", b"{}")
        for _ in range(500):  # bounded
            if made[0]:
                break
            await asyncio.sleep(0.01)
        assert made[0] == 1 and not spool._unsynced  # covered now, though still unpublished
        await asyncio.sleep(0.2)
        assert made[0] == 1  # once
    finally:
        stop.set()
        await relay
        await spool.close()
    reopened = Spool(tmp_path, max_rows=100)
    await reopened.open()
    try:
        assert reopened.depth == 1  # the refused event, still to publish
    finally:
        await reopened.close()


async def test_sync_rows_events_still_make_a_checkpoint_when_all_were_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The WAL is only emptied by a checkpoint: acknowledged events must not let it grow for good.
    spool = Spool(tmp_path, max_rows=100, sync_interval_s=60, sync_rows=8, space_check_s=60)
    made = count_checkpoints(spool, monkeypatch)
    await spool.open()
    stop = asyncio.Event()

    async def publish(rows: list[Row]) -> list[bool]:
        return [True] * len(rows)

    relay = asyncio.ensure_future(spool.relay(publish, stop))
    try:
        for n in range(8):
            await spool.append(f"req_{n}", "usage.v1.request.recorded", b"{}")
            await asyncio.sleep(0.01)
        for _ in range(500):  # bounded
            if made[0]:
                break
            await asyncio.sleep(0.01)
        assert made[0] == 1
    finally:
        stop.set()
        await relay
        await spool.close()
