"""Claiming spool directories, and publishing the spools of workers that no longer exist (I/O).

A worker writes only in a directory it has claimed: an exclusive ``flock`` on ``.claim`` inside
it, held for the life of the process and dropped by the kernel when the process dies, however it
dies. So two processes never write one spool (a restarted worker waits for the one it replaces
to let go), and an orphan (:mod:`.worker_plan`) is relayed by one process at a time. Once an
orphan's spool is empty its files are removed: every event in it was acknowledged by JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path

from aiapi_edge.spool import Publish, Spool
from aiapi_edge.worker_plan import LEGACY, orphans_of, worker_dir_name, worker_index

log = logging.getLogger("aiapi.edge.spool_claim")

CLAIM_FILE = ".claim"
SPOOL_FILES = ("usage.sqlite3", "usage.sqlite3-wal", "usage.sqlite3-shm")
# A worker's mirror snapshot (:mod:`.mirror_store`): of no use once its worker is gone.
LEFT_BEHIND = (*SPOOL_FILES, "mirrors.json", CLAIM_FILE)
_POLL_S = 0.1


class Claim:
    """An exclusive claim on one directory, until :meth:`release` or the process ends."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def try_claim(directory: Path) -> Claim | None:
    """Claim ``directory`` (created if missing) now, or None when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / CLAIM_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Claim(directory, fd)


async def claim(directory: Path, *, timeout_s: float) -> Claim:
    """Claim ``directory``, waiting up to ``timeout_s`` for the process holding it to end (a
    worker being replaced still drains); TimeoutError after that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    waited = False
    while (held := try_claim(directory)) is None:
        if loop.time() >= deadline:
            raise TimeoutError(f"spool directory {directory.name} is held by another process")
        if not waited:
            log.info(
                "waiting for the spool's previous owner to exit", extra={"dir": str(directory)}
            )
            waited = True
        await asyncio.sleep(_POLL_S)
    return held


def present_spools(root: Path) -> set[int]:
    """The worker indices with a directory under ``root``, and LEGACY when the single-process
    layout left a spool at the top."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in root.iterdir():
            index = worker_index(entry.name)
            if index is not None and entry.is_dir():
                found.add(index)
    if (root / SPOOL_FILES[0]).exists():
        found.add(LEGACY)
    return found


def orphan_dir(root: Path, orphan: int) -> Path:
    return root if orphan == LEGACY else root / worker_dir_name(orphan)


async def adopt_orphans(
    root: Path, index: int, count: int, publish: Publish, stop: asyncio.Event, *, max_rows: int
) -> None:
    """Publish, then remove, every orphan spool worker ``index`` of ``count`` adopts."""
    for orphan in orphans_of(index, count, present_spools(root)):
        if stop.is_set():
            return
        directory = orphan_dir(root, orphan)
        held = try_claim(directory)
        if held is None:  # its old owner still runs (it is stopping): the next start adopts it
            log.warning("orphan spool still held; left for later", extra={"dir": str(directory)})
            continue
        try:
            await _drain(directory, publish, stop, max_rows=max_rows)
        finally:
            held.release()


async def _drain(directory: Path, publish: Publish, stop: asyncio.Event, *, max_rows: int) -> None:
    if not (directory / SPOOL_FILES[0]).exists():
        _remove(directory)
        return
    spool = Spool(directory, max_rows=max_rows)
    await spool.open()
    depth = spool.depth
    relayed = asyncio.Event()
    relay = asyncio.ensure_future(spool.relay(publish, relayed))
    try:
        while spool.depth and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_POLL_S)
    finally:
        relayed.set()
        await asyncio.gather(relay, return_exceptions=True)
        empty = spool.depth == 0
        await spool.close()
    if not empty:
        return  # stopped first: the next start of this worker goes on with it
    _remove(directory)
    log.info("orphan spool published and removed", extra={"dir": str(directory), "events": depth})


def _remove(directory: Path) -> None:
    """Remove an emptied orphan's files (at the top of the spool directory, only the spool's)."""
    legacy = worker_index(directory.name) is None
    for name in SPOOL_FILES + (() if legacy else LEFT_BEHIND):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    if not legacy:
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when nothing else was put in it
