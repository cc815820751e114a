"""The local usage spool: a usage event is durable here before the response that caused it ends.

Why SQLite in WAL mode rather than an append-only file: "publish, then mark done" is a delete by
primary key instead of a compaction scheme, the depth is a counter, a crash leaves only whole
committed rows, and WAL appends are sequential writes, as cheap as a log file.

Durability. The contract's threat model is a crashed process (``kill -9``, an OOM kill): a row
must survive it. A WAL commit with ``synchronous=NORMAL`` is a ``write()`` into the WAL file,
which is in the kernel's page cache the moment it returns, so it survives the process; it costs
about 30 µs, so appends commit on the event loop (a hop to a thread costs more than the commit).
Group commit: the appends of one event-loop iteration (the requests that end together under
load) are committed in one transaction, at the start of the next iteration, and each returns
once that commit did; one commit's WAL frames and ``fcntl`` locks serve them all. An append its
caller knows to be alone (the edge's only request in flight: nothing could join it) commits at
once instead, without the two loop iterations of a group. Surviving a
power cut needs an ``fsync``, which costs 0.25 ms or more here; a background thread checkpoints
the WAL (``fsync`` of the WAL, copy into the database, ``fsync``) once an event has waited
``sync_interval_s`` (0.5 s) since its commit without JetStream acknowledging it, or as soon as
``sync_rows`` (1,024) events were appended since the last checkpoint, whichever comes first. An
event JetStream acknowledged in time needs no checkpoint: it is in the stream, as every event is
once the relay deleted it, and a power cut that takes the spool's last writes back only brings
back a duplicate (or nothing) to publish. So by default a power cut (or a kernel crash) can lose
the usage events JetStream had not acknowledged within ~0.5 s of their commit (at most ~1,024
events) plus one checkpoint; a killed process loses nothing. The interval was 50 ms: at a light
request rate that was a checkpoint, two ``fsync``, per request, most of the edge's own CPU per
request (docs/performance.md, "CPU in proportion to work"); then a checkpoint 0.5 s after the
first commit whatever became of its events, two a second at 10 requests/s, none now while the
relay keeps up (docs/performance.md, "Leases, spool checkpoints and nats-server at low
rates"). With ``fsync=True`` (``AIAPI_EDGE_SPOOL_FSYNC``) an append also waits for the next
checkpoint, started at once when none is running: group commit, so concurrent requests share
one ``fsync``.

A relay task publishes the rows to JetStream (``Nats-Msg-Id`` = event id), a round at a time as
one batch (``Bus.publish_batch``), and deletes each once acknowledged; a row refused or without an
ack stays and is published again; with NATS down it retries, and rows left by a crash are
published after the restart.

Room. A request is admitted only while the spool can take its event (:attr:`Spool.has_room`):
fewer than ``max_rows`` unpublished events, the spool's files under ``max_bytes``, at least
``min_free_bytes`` free on their filesystem (both checked by the sync loop, after every
checkpoint while events arrive and every ``space_check_s`` when idle: an idle edge does not wake
for nothing), and no write failing now. An append that fails anyway (the disk filled up
between two checks, an I/O error) keeps the event in memory, hands it to the relay, retries the
write from the sync loop, and closes admission until a write succeeds again: the edge refuses new
requests (503) rather than serve them unbilled.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiapi_shared.linger import AdaptiveLinger

log = logging.getLogger("aiapi.edge.spool")

# The relay's rounds aim at about this many events (aiapi_shared.linger).
RELAY_LINGER_TARGET = 32
# An idle relay deletes what was acknowledged after this long without a new event (which would
# carry the delete in its commit), and otherwise wakes only this often (new events wake it).
ACKED_DELETE_S = 0.5
RELAY_IDLE_WAKE_S = 5.0

Row = tuple[str, str, bytes]  # event id, subject, payload
# Publishes a round's rows together; says for each whether JetStream acknowledged it.
Publish = Callable[[list[Row]], Awaitable[list[bool]]]

# ``seq`` without AUTOINCREMENT: a new row still gets a rowid above every row present (the
# relay's order), and a commit no longer rewrites ``sqlite_sequence`` too (one WAL page fewer
# per usage event). A spool file made with AUTOINCREMENT keeps it and works alike.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""
_INSERT = "INSERT OR IGNORE INTO spool (event_id, subject, payload) VALUES (?, ?, ?)"


class SpoolFull(Exception):
    """The spool holds its maximum of unpublished events: admitting more would risk losing one.

    The bound is applied at admission (:attr:`Spool.has_room`); an event of a request already
    admitted is always appended."""


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_rows: int,
        max_bytes: int = 1 << 40,
        min_free_bytes: int = 0,
        fsync: bool = False,
        sync_interval_s: float = 0.5,
        sync_rows: int = 1024,
        space_check_s: float = 1.0,
    ) -> None:
        self._path = directory / "usage.sqlite3"
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._min_free_bytes = min_free_bytes
        self._space_ok = True  # the files' size and the free disk space, as last checked
        self._unwritten: list[Row] = []  # appends whose commit failed, retried by the sync loop
        self._fsync = fsync
        self._sync_interval_s = sync_interval_s
        self._sync_rows = max(1, sync_rows)
        self._rows_since_sync = 0  # events appended since the last checkpoint started
        self._space_check_s = space_check_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-spool-sync")
        self._db: sqlite3.Connection | None = None  # the loop thread's: every write
        self._syncer_db: sqlite3.Connection | None = None  # the sync thread's: checkpoints only
        # Events committed since the last checkpoint started that JetStream has not acknowledged
        # yet, with their commit's time (oldest first): what a checkpoint would protect.
        self._unsynced: dict[str, float] = {}
        self._sync_waiters: list[asyncio.Future[None]] = []
        self._sync_now = asyncio.Event()
        self._woken = asyncio.Event()  # the idle sync loop has work: a commit, a failed write
        self._syncer: asyncio.Task[None] | None = None
        self._fresh: list[Row] = []
        # Appends of this event-loop iteration, committed together by _commit_group, and
        # their waits (each told whether the commit succeeded).
        self._group: list[Row] = []
        self._group_written: list[asyncio.Future[bool]] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # open()'s
        self._acked: list[str] = []
        self._new_rows = asyncio.Event()
        self.depth = 0

    @property
    def has_room(self) -> bool:
        """Whether a new request's event can be taken now (see "Room" above)."""
        return self.depth < self._max_rows and self._space_ok and not self._unwritten

    @property
    def unwritten(self) -> int:
        """Events held in memory only, because their write failed (a gauge for operators)."""
        return len(self._unwritten)

    def check_space(self) -> bool:
        """Measure the spool's files and the free disk space; returns whether both allow more."""
        used = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                used += self._path.with_name(self._path.name + suffix).stat().st_size
            except FileNotFoundError:
                continue
        try:
            free = shutil.disk_usage(self._path.parent).free
        except OSError:
            free = 0
        ok = used < self._max_bytes and free >= self._min_free_bytes
        if ok != self._space_ok:
            log.log(
                logging.INFO if ok else logging.ERROR,
                "spool space %s",
                "available again" if ok else "exhausted: refusing new requests",
                extra={"spool_bytes": used, "free_bytes": free},
            )
        self._space_ok = ok
        return ok

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=100")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the sync thread checkpoints, not a commit
        db.execute("PRAGMA journal_size_limit=67108864")
        db.execute(_SCHEMA)
        self._db = db
        self.depth = int(db.execute("SELECT count(*) FROM spool").fetchone()[0])
        syncer = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        syncer.execute("PRAGMA busy_timeout=1000")
        self._syncer_db = syncer
        self.check_space()
        self._syncer = asyncio.ensure_future(self._sync_loop())
        if self.depth:
            log.info("spool holds unpublished usage events", extra={"depth": self.depth})
            self._new_rows.set()

    async def close(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            await asyncio.gather(self._syncer, return_exceptions=True)
            self._syncer = None
        if self._db is not None:
            self._commit_group()  # appends still waiting for their iteration's commit
            await self._checkpoint()
            self._db.close()
            self._db = None
        if self._syncer_db is not None:
            self._syncer_db.close()
            self._syncer_db = None
        self._executor.shutdown(wait=True)

    async def append(
        self, event_id: str, subject: str, payload: bytes, *, alone: bool = False
    ) -> None:
        """Returns once the event survives a killed process (and, with ``fsync``, a power cut).

        ``alone``: the caller knows no other append can come before the loop's next iteration
        (the edge's only request in flight). The event is then committed at once, in its own
        transaction, instead of waiting a loop iteration for others to join it and another for
        the caller to resume: on a lone request's path those two iterations, and whatever other
        tasks ran in them first (the relay, the sync loop), came before its answer was written.
        An append of a group already gathering joins it all the same.

        If the write fails, the event is kept in memory and published from there, the write is
        retried, and :attr:`has_room` stays false until one succeeds; the caller is not failed,
        because its request has already been served and its event must still be billed.
        """
        loop = self._loop  # not asyncio.get_running_loop(): a getpid() system call each (3.11)
        assert loop is not None, "Spool.open() first"
        row = (event_id, subject, payload)
        if alone and not self._group:
            ok = self._write([row])
            self._hand_to_relay([row])
        else:
            if not self._group:
                loop.call_soon(self._commit_group)
            written: asyncio.Future[bool] = loop.create_future()  # its own: a cancelled request
            self._group.append(row)  # cancels no other's wait
            self._group_written.append(written)
            ok = await written
        if not ok:
            return
        if self._fsync:
            waiter: asyncio.Future[None] = loop.create_future()
            self._sync_waiters.append(waiter)
            self._sync_now.set()
            await waiter

    def _commit_group(self) -> None:
        """Commit the events appended since the last group (the appends of one event-loop
        iteration, scheduled by the first of them), in one transaction with the deletes of
        what JetStream acknowledged; then their appends return. A failed write keeps them in
        memory (see :meth:`append`)."""
        rows, self._group = self._group, []
        waiters, self._group_written = self._group_written, []
        if not rows:
            return
        try:
            ok = self._write(rows)
        except BaseException as exc:  # a bug (or a closed spool): its appends raise, none hangs
            for written in waiters:
                if not written.done():
                    written.set_exception(exc)
            raise
        for written in waiters:
            if not written.done():
                written.set_result(ok)
        # The relay is woken after the appends: their requests' answers go out first.
        self._hand_to_relay(rows)

    def _write(self, rows: list[Row]) -> bool:
        """Commit ``rows`` with the deletes of what JetStream acknowledged; whether the commit
        succeeded (a failed one keeps them in memory, see :meth:`append`). Any other exception
        (a bug, a closed spool) propagates. The caller hands the rows to the relay."""
        try:
            self._commit(rows, self._take_acked())
        except (sqlite3.Error, OSError) as exc:
            if not self._unwritten:
                log.error("spool write failed: refusing new requests", extra={"detail": repr(exc)})
            self._unwritten.extend(rows)
            self._woken.set()
            ok = False
        else:
            self._remember_unsynced(rows)
            self._rows_since_sync += len(rows)
            if self._rows_since_sync >= self._sync_rows:
                self._sync_now.set()  # a busy edge checkpoints by size, before the interval ends
            ok = True
        return ok

    def _hand_to_relay(self, rows: list[Row]) -> None:
        """The relay publishes them from memory (committed or not: see :meth:`append`)."""
        self._fresh.extend(rows)
        self._new_rows.set()

    def _take_acked(self) -> list[str]:
        acked, self._acked = self._acked, []
        return acked

    def _commit(self, inserts: list[Row], deletes: list[str]) -> None:
        """One transaction: forget what JetStream acknowledged, add the new events."""
        assert self._db is not None, "Spool.open() first"
        db = self._db
        db.execute("BEGIN")
        try:
            if deletes:
                gone = db.executemany(
                    "DELETE FROM spool WHERE event_id = ?", [(d,) for d in deletes]
                )
                self.depth -= gone.rowcount
            if inserts:
                self.depth += db.executemany(_INSERT, inserts).rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.depth = int(db.execute("SELECT count(*) FROM spool").fetchone()[0])
            self._acked.extend(deletes)
            raise
        self._woken.set()

    def _remember_unsynced(self, rows: list[Row]) -> None:
        assert self._loop is not None
        committed_at = self._loop.time()
        for row in rows:
            self._unsynced[row[0]] = committed_at

    # -- the sync thread -------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Checkpoint once an event committed ``sync_interval_s`` ago is still not acknowledged
        by JetStream, at once when an append waits (``fsync``) or ``sync_rows`` events came.
        With nothing to protect it sleeps until a commit, waking only every ``space_check_s``
        to measure the disk."""
        loop = asyncio.get_running_loop()
        while True:
            if not (self._unsynced or self._unwritten or self._sync_waiters):
                if self._sync_now.is_set():  # sync_rows came, all of them acknowledged already
                    await self._checkpoint()
                self._woken.clear()
                if not await _wait_set(self._woken, self._space_check_s):
                    self.check_space()
                continue  # woken by a commit (or a delete only): look again
            if self._sync_waiters or self._sync_now.is_set():
                wait_s = 0.0
            elif self._unsynced:  # until the oldest unacknowledged event is due
                wait_s = self._due_at() - loop.time()
            else:
                wait_s = self._sync_interval_s  # only a failed write to retry
            if wait_s > 0:
                await _wait_set(self._sync_now, wait_s)
            if self._unwritten:
                self._retry_unwritten()
            due = self._sync_waiters or self._sync_now.is_set() or self._overdue(loop.time())
            if due and not await self._checkpoint():
                await asyncio.sleep(self._sync_interval_s)  # not a busy loop of failures
            self.check_space()

    def _due_at(self) -> float:
        """When the oldest unacknowledged event will have waited ``sync_interval_s`` (the dict
        keeps commit order); infinity when there is none."""
        oldest = next(iter(self._unsynced.values()), None)
        return float("inf") if oldest is None else oldest + self._sync_interval_s

    def _overdue(self, now: float) -> bool:
        """An event has waited ``sync_interval_s`` for JetStream's acknowledgement."""
        return now >= self._due_at()

    def _retry_unwritten(self) -> None:
        """Write the events whose append failed; the relay may have published some meanwhile
        (a duplicate publish later would be harmless, but there is no need for one)."""
        acked = set(self._acked)
        rows = [row for row in self._unwritten if row[0] not in acked]
        try:
            self._commit(rows, [])
        except (sqlite3.Error, OSError):
            return  # still failing; admission stays closed, the next round tries again
        self._unwritten = []
        self._remember_unsynced(rows)
        log.info("spool writes succeed again", extra={"written": len(rows)})

    async def _checkpoint(self) -> bool:
        self._sync_now.clear()
        unsynced, self._unsynced = self._unsynced, {}
        self._rows_since_sync = 0
        waiters, self._sync_waiters = self._sync_waiters, []
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._checkpoint_in_thread)
        except (sqlite3.Error, OSError) as exc:
            # Still to protect, oldest first (one acknowledged meanwhile costs a checkpoint).
            self._unsynced = {**unsynced, **self._unsynced}
            log.error("spool checkpoint failed", extra={"detail": repr(exc)})
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return False
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return True

    def _checkpoint_in_thread(self) -> None:
        # PASSIVE: fsync the WAL, copy what it can into the database file, fsync that; it
        # never waits for the loop thread's writer, which may go on committing meanwhile.
        assert self._syncer_db is not None
        self._syncer_db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- the relay -------------------------------------------------------------------------

    def _oldest(self, limit: int) -> list[Row]:
        assert self._db is not None
        cursor = self._db.execute(
            "SELECT event_id, subject, payload FROM spool ORDER BY seq LIMIT ?", (limit,)
        )
        return [(str(r[0]), str(r[1]), bytes(r[2])) for r in cursor.fetchall()]

    async def relay(
        self,
        publish: Publish,
        stop: asyncio.Event,
        *,
        batch: int = 256,
        linger_s: float = 0.0,
        linger_max_s: float | None = None,
    ) -> None:
        """Publish spooled events until ``stop``.

        Normally the events just committed are published from memory; acknowledged ones are
        deleted in the next commit (a lost delete only means a duplicate publish, which the
        stream's ``Nats-Msg-Id`` window and billing's unique key absorb). After a failed publish
        (NATS away) or a restart with rows left, the relay reads the table in order until it is
        empty. ``publish(rows)`` publishes a round together (``Nats-Msg-Id`` = event id) and says
        which rows NATS acknowledged.

        Rounds: after publishing a round shorter than ``batch``, the relay waits for others to
        gather before the next, so one round of publishes and acknowledgements carries several
        events, which costs the edge (and NATS, and billing's fetches) far less than one round
        each when requests come one at a time. The wait starts at ``linger_s`` and adapts up to
        ``linger_max_s`` (:class:`~aiapi_shared.linger.AdaptiveLinger`: longer while rounds are
        short, none after a full one); the first event after a pause is published at once.
        """
        linger = AdaptiveLinger(
            linger_s,
            linger_s if linger_max_s is None else linger_max_s,
            target=RELAY_LINGER_TARGET,
            batch=batch,
        )
        loop = asyncio.get_running_loop()
        waited_s = 0.0  # since the last round, waiting for the next one's first event
        backlog = self.depth > 0
        while not stop.is_set():
            if backlog:
                if not self._forget_acked():
                    await _wait_either(stop, stop, timeout_s=0.5)
                    continue
                self._fresh.clear()  # every committed row is in the table, read next
                rows = self._oldest(batch)
                if not rows:
                    backlog = False
                elif not await self._publish(publish, rows):
                    await _wait_either(stop, stop, timeout_s=0.5)
                continue
            if not self._fresh:
                self._new_rows.clear()
                began = loop.time()
                # Acknowledged rows are deleted with the next append's commit, or after
                # ACKED_DELETE_S without one (the depth, which a stop's drain waits on, counts
                # them); with none, the relay sleeps until an event comes.
                idle_s = ACKED_DELETE_S if self._acked else RELAY_IDLE_WAKE_S
                await _wait_either(self._new_rows, stop, timeout_s=idle_s)
                waited_s += loop.time() - began
                if not self._fresh and self._acked:
                    self._forget_acked()
                continue
            rows, self._fresh = self._fresh[:batch], self._fresh[batch:]
            if not await self._publish(publish, rows):
                backlog = True  # every unacknowledged row is in the table
                self._fresh.clear()
                await _wait_either(stop, stop, timeout_s=0.5)
                continue
            pause_s = linger.after(len(rows), waited_s)
            waited_s = 0.0
            if pause_s > 0:
                await _wait_either(stop, stop, timeout_s=pause_s)

    def _forget_acked(self) -> bool:
        """Delete the acknowledged rows; a failed delete keeps their ids for the next commit
        (the relay must outlive a full disk: it is what empties the spool)."""
        try:
            self._commit([], self._take_acked())
        except (sqlite3.Error, OSError) as exc:
            log.warning("spool delete failed; retrying", extra={"detail": type(exc).__name__})
            return False
        return True

    async def _publish(self, publish: Publish, rows: list[Row]) -> bool:
        """Publish a round; only the rows JetStream acknowledged are deleted (the others stay
        in the table and are published again, under the same ``Nats-Msg-Id``)."""
        try:
            results = await publish(rows)
        except Exception as exc:  # noqa: BLE001 (whatever failed, the rows stay and are retried)
            log.warning("relay publish failed", extra={"detail": type(exc).__name__})
            return False
        acked = [row[0] for row, ok in zip(rows, results, strict=True) if ok]
        self._acked.extend(acked)
        for event_id in acked:  # in JetStream now: no checkpoint needed for it
            self._unsynced.pop(event_id, None)
        return len(acked) == len(rows)


async def _wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` was set within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def _wait_either(first: asyncio.Event, second: asyncio.Event, *, timeout_s: float) -> None:
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    _, pending = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
