"""Revision-conditional KV writes for versioned documents: an older version never wins.

A writer reads the key's current entry, and writes only if its own version is newer, conditional
on the revision it read (``Nats-Expected-Last-Subject-Sequence``): if another writer got in
between, it reads again and decides again. Readers of the bucket therefore only ever see versions
grow, whatever the order in which concurrent writers (replicas, retries) arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = ["KeyValue", "put_if_newer", "update_if_unchanged"]


async def put_if_newer(
    kv: KeyValue,
    key: str,
    payload: bytes,
    *,
    version: int,
    version_of: Callable[[bytes], int],
    attempts: int = 8,
) -> bool:
    """Store ``payload`` at ``key`` unless the bucket holds ``version`` or a newer one already.

    ``version_of`` reads the version out of a stored value. Returns whether this write landed.
    """
    for _ in range(attempts):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            try:
                await kv.create(key, payload)
                return True
            except KeyWrongLastSequenceError:
                continue
        if entry.value is not None and version_of(entry.value) >= version:
            return False
        try:
            await kv.update(key, payload, last=entry.revision)
            return True
        except KeyWrongLastSequenceError:
            continue
    return False


async def update_if_unchanged(
    kv: KeyValue, key: str, payload: bytes, *, revision: int
) -> int | None:
    """Store ``payload`` only if ``key`` is still at ``revision`` (what this writer stored last,
    so no read is needed); returns the new revision, or ``None`` if someone wrote in between."""
    try:
        return await kv.update(key, payload, last=revision)
    except KeyWrongLastSequenceError:
        return None
