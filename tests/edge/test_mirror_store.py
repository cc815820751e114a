"""The mirrors kept on disk (:mod:`aiapi_edge.mirror_store`): what is restored, what is dropped
when KV is back, the size bound, and a file that cannot be read."""

from __future__ import annotations

import os
import time
from pathlib import Path

from aiapi_edge.mirror_store import FILE_NAME, MirrorStore


class Mirror:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def on_change(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


def store(directory: Path, *, max_bytes: int = 1 << 20) -> tuple[MirrorStore, Mirror]:
    kept, mirror = MirrorStore(directory, max_bytes=max_bytes, max_age_s=60), Mirror()
    return kept, mirror


async def test_restored_entries_kv_no_longer_holds_are_dropped_once_the_watch_caught_up(
    tmp_path: Path,
) -> None:
    first, mirror = store(tmp_path)
    changed = first.tee("keys", mirror.on_change)
    changed("a", b'{"v":1}')
    changed("b", b'{"v":2}')
    await first.save()

    second, restored = store(tmp_path)
    changed = second.tee("keys", restored.on_change)
    remaining_s = await second.restore()
    assert remaining_s is not None and 0 < remaining_s <= 60
    assert restored.values == {"a": b'{"v":1}', "b": b'{"v":2}'}
    changed("a", b'{"v":3}')  # the watch delivers what KV holds now: "b" is gone
    second.confirm("keys")
    assert restored.values == {"a": b'{"v":3}'}


async def test_a_snapshot_past_its_age_is_not_restored(tmp_path: Path) -> None:
    first, mirror = store(tmp_path)
    first.tee("keys", mirror.on_change)("a", b"{}")
    await first.save()
    aged = time.time() - 61
    os.utime(tmp_path / FILE_NAME, (aged, aged))
    second, restored = store(tmp_path)
    second.tee("keys", restored.on_change)
    assert await second.restore() is None
    assert restored.values == {}


async def test_mirrors_over_the_bound_are_not_written_and_the_old_file_is_not_refreshed(
    tmp_path: Path,
) -> None:
    small, mirror = store(tmp_path, max_bytes=200)
    changed = small.tee("keys", mirror.on_change)
    changed("a", b"{}")
    await small.save()
    written = (tmp_path / FILE_NAME).read_bytes()
    aged = time.time() - 30
    os.utime(tmp_path / FILE_NAME, (aged, aged))
    changed("b", b'"' + b"x" * 300 + b'"')
    await small.save()
    await small.save()  # nothing changed since: still not current, so not touched either
    assert (tmp_path / FILE_NAME).read_bytes() == written
    assert (tmp_path / FILE_NAME).stat().st_mtime == aged


async def test_an_unreadable_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b'{"format": 1, "buckets": {"keys": {"a"')  # cut short
    kept, mirror = store(tmp_path)
    kept.tee("keys", mirror.on_change)
    assert await kept.restore() is None
    assert mirror.values == {}
