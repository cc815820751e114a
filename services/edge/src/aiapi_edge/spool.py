"""The local usage spool: a usage event is durable here before the response that caused it ends.

Why SQLite in WAL mode rather than an append-only file: "publish, then mark done" is a delete by
primary key instead of a compaction scheme, the depth is a counter, a crash leaves only whole
committed rows, and WAL appends are sequential writes, as cheap as a log file.

Every SQLite call runs on one dedicated thread, so the event loop never blocks on the disk.
Appends are committed in groups: while one commit (one ``fsync`` with ``synchronous=FULL``) is in
flight, new appends wait and share the next one, so concurrent requests do not queue for the
disk one by one. A relay task publishes the rows to JetStream (``Nats-Msg-Id`` = event id) and
deletes them once acknowledged; with NATS down it retries, and rows left by a crash are
published after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("aiapi.edge.spool")

T = TypeVar("T")
Publish = Callable[[str, bytes, str], Awaitable[object]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


class SpoolFull(Exception):
    """The spool holds its maximum of unpublished events: admitting more would risk losing one."""


class Spool:
    def __init__(self, directory: Path, *, max_rows: int, fsync: bool = True) -> None:
        self._path = directory / "usage.sqlite3"
        self._max_rows = max_rows
        self._fsync = fsync
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-spool")
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str, bytes, asyncio.Future[None]]] = []
        self._writing = False
        self._writer: asyncio.Future[None] | None = None
        self._fresh: list[tuple[str, str, bytes]] = []
        self._acked: list[str] = []
        self._new_rows = asyncio.Event()
        self.depth = 0

    @property
    def has_room(self) -> bool:
        return self.depth < self._max_rows

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._open)
        if self.depth:
            log.info("spool holds unpublished usage events", extra={"depth": self.depth})
            self._new_rows.set()

    def _open(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        db.execute(_SCHEMA)
        self._db = db
        self.depth = int(db.execute("SELECT count(*) FROM spool").fetchone()[0])

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def append(self, event_id: str, subject: str, payload: bytes) -> None:
        """Returns once the event is committed to disk."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event_id, subject, payload, future))
        if not self._writing:
            self._writing = True
            self._writer = asyncio.ensure_future(self._write_groups())
        await future

    async def _write_groups(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                rows = [(e, s, p) for e, s, p, _ in group]
                try:
                    await self._run(self._commit, rows, self._take_acked())
                except sqlite3.Error as exc:
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self._fresh.extend(rows)
                self._new_rows.set()
                for *_, future in group:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._writing = False

    def _take_acked(self) -> list[str]:
        acked, self._acked = self._acked, []
        return acked

    def _commit(self, inserts: list[tuple[str, str, bytes]], deletes: list[str]) -> None:
        """One transaction: forget what JetStream acknowledged, add the new events."""
        assert self._db is not None
        db = self._db
        db.execute("BEGIN")
        if deletes:
            gone = db.executemany("DELETE FROM spool WHERE event_id = ?", [(d,) for d in deletes])
            self.depth -= gone.rowcount  # only this thread writes the counter
        if inserts:
            added = db.executemany(
                "INSERT OR IGNORE INTO spool (event_id, subject, payload) VALUES (?, ?, ?)",
                inserts,
            )
            self.depth += added.rowcount
        db.execute("COMMIT")

    def _oldest(self, limit: int) -> list[tuple[str, str, bytes]]:
        assert self._db is not None
        cursor = self._db.execute(
            "SELECT event_id, subject, payload FROM spool ORDER BY seq LIMIT ?", (limit,)
        )
        return [(str(r[0]), str(r[1]), bytes(r[2])) for r in cursor.fetchall()]

    async def relay(self, publish: Publish, stop: asyncio.Event, *, batch: int = 256) -> None:
        """Publish spooled events until ``stop``.

        Normally the events just committed are published from memory; acknowledged ones are
        deleted in the next commit (a lost delete only means a duplicate publish, which the
        stream's ``Nats-Msg-Id`` window and billing's unique key absorb). After a failed publish
        (NATS away) or a restart with rows left, the relay reads the table in order until it is
        empty. ``publish(subject, payload, msg_id)`` raises when NATS does not acknowledge.
        """
        backlog = self.depth > 0
        while not stop.is_set():
            if backlog:
                await self._run(self._commit, [], self._take_acked())
                rows = await self._run(self._oldest, batch)
                if not rows:
                    backlog = False
                elif not await self._publish(publish, rows):
                    await _wait_either(stop, stop, timeout_s=0.5)
                continue
            if not self._fresh:
                self._new_rows.clear()
                await _wait_either(self._new_rows, stop, timeout_s=0.5)
                if not self._fresh and self._acked and not self._writing:
                    await self._run(self._commit, [], self._take_acked())
                continue
            rows, self._fresh = self._fresh[:batch], self._fresh[batch:]
            if not await self._publish(publish, rows):
                backlog = True  # every unacknowledged row is in the table
                self._fresh.clear()
                await _wait_either(stop, stop, timeout_s=0.5)

    async def _publish(self, publish: Publish, rows: list[tuple[str, str, bytes]]) -> bool:
        results = await asyncio.gather(
            *(publish(subject, payload, event_id) for event_id, subject, payload in rows),
            return_exceptions=True,
        )
        acked = [row[0] for row, result in zip(rows, results, strict=True) if not _failed(result)]
        self._acked.extend(acked)
        return len(acked) == len(rows)


def _failed(result: object) -> bool:
    return isinstance(result, BaseException)


async def _wait_either(first: asyncio.Event, second: asyncio.Event, *, timeout_s: float) -> None:
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    _, pending = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
