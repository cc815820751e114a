"""The edge's mirrors kept on disk, so that a restarted edge serves while NATS is still away.

:class:`MirrorStore` sits in front of each KV mirror's ``on_change`` (:meth:`MirrorStore.tee`)
and keeps the values as they arrive (:mod:`.mirror_snapshot`: digests, never keys). Every
``interval_s`` while the mirrors are live (NATS connected, the key watch caught up) it writes
them to ``mirrors.json`` next to the spool when they changed, or touches the file when they did
not: the file's modification time is the last moment its content was known current. Writes are
atomic (a temporary file, ``fsync``, rename) and bounded: a document over ``max_bytes`` is not
written (the previous one stays, and ages out).

At start, before any watch, :meth:`MirrorStore.restore` replays a snapshot younger than
``max_age_s`` into the mirrors. When a bucket's watch has delivered its current entries
(:meth:`MirrorStore.confirm`), every restored entry it did not deliver is dropped: it was
deleted while this edge was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from aiapi_edge.mirror_snapshot import Buckets, UnreadableSnapshot, decode, encode

log = logging.getLogger("aiapi.edge.mirror_store")

OnChange = Callable[[str, bytes | None], None]
FILE_NAME = "mirrors.json"


class MirrorStore:
    def __init__(self, directory: Path, *, max_bytes: int, max_age_s: float) -> None:
        self.path = directory / FILE_NAME
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._values: Buckets = {}
        self._callbacks: dict[str, OnChange] = {}
        self._unconfirmed: dict[str, set[str]] = {}
        # What the file holds is not what is kept here until written (or restored from it).
        self._dirty = True
        self._too_big = False  # the last document was over the bound (logged once)

    def tee(self, bucket: str, on_change: OnChange) -> OnChange:
        """``on_change`` for ``bucket``, with every change kept for the next write."""
        values = self._values.setdefault(bucket, {})
        unconfirmed = self._unconfirmed.setdefault(bucket, set())

        def changed(key: str, value: bytes | None) -> None:
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
            unconfirmed.discard(key)
            self._dirty = True
            on_change(key, value)

        self._callbacks[bucket] = changed
        return changed

    async def restore(self) -> float | None:
        """Replay the snapshot on disk into the teed mirrors; how many seconds it may still be
        served from, or None when there is none that may be used."""
        loaded = await asyncio.to_thread(self._read)
        if loaded is None:
            return None
        buckets, age_s = loaded
        remaining_s = self._max_age_s - max(age_s, 0.0)
        if remaining_s <= 0:
            log.warning(
                "mirror snapshot too old to serve from; waiting for NATS",
                extra={"age_s": round(age_s), "max_age_s": self._max_age_s},
            )
            return None
        for bucket, values in buckets.items():
            changed = self._callbacks.get(bucket)
            if changed is None:
                continue
            for key, value in values.items():
                changed(key, value)
            self._unconfirmed[bucket] |= set(values)
        self._dirty = False
        log.info(
            "mirrors restored from disk",
            extra={
                "age_s": round(age_s, 1),
                "entries": {bucket: len(values) for bucket, values in buckets.items()},
            },
        )
        return remaining_s

    def confirm(self, bucket: str) -> None:
        """``bucket``'s watch delivered its current entries: drop what was restored and not
        delivered again."""
        gone = self._unconfirmed.get(bucket)
        if not gone:
            return
        changed = self._callbacks[bucket]
        for key in list(gone):
            changed(key, None)
        log.info(
            "restored entries gone from KV dropped", extra={"bucket": bucket, "count": len(gone)}
        )

    async def keep(
        self, live: Callable[[], bool], stop: asyncio.Event, *, interval_s: float
    ) -> None:
        """Until ``stop``: write (or touch) the file every ``interval_s`` while ``live()``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if live():
                await self.save()

    async def save(self) -> None:
        if not self._dirty:
            if not self._too_big:  # the file holds what is kept here: it is current now
                await asyncio.to_thread(self._touch)
            return
        self._dirty = False
        raw = encode(self._values)  # on the loop: the dicts change only on the loop
        if len(raw) > self._max_bytes:
            if not self._too_big:
                log.error(
                    "mirrors over AIAPI_EDGE_MIRROR_MAX_BYTES; not written (a restart without "
                    "NATS cannot serve)",
                    extra={"bytes": len(raw), "max_bytes": self._max_bytes},
                )
            self._too_big = True
            return
        try:
            await asyncio.to_thread(self._write, raw)
        except OSError as error:
            self._dirty = True  # tried again next round
            log.error("mirrors not written: %s", type(error).__name__)
            return
        self._too_big = False

    def _read(self) -> tuple[Buckets, float] | None:
        try:
            stat = self.path.stat()
            if stat.st_size > self._max_bytes:
                log.error("mirror snapshot over AIAPI_EDGE_MIRROR_MAX_BYTES; not read")
                return None
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.error("mirror snapshot unreadable: %s", type(error).__name__)
            return None
        try:
            buckets = decode(raw)
        except UnreadableSnapshot as error:
            log.error("mirror snapshot unreadable: %s", error)
            return None
        return buckets, time.time() - stat.st_mtime

    def _write(self, raw: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def _touch(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)
