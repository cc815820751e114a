"""Revision-conditional KV writes for versioned documents: an older version never wins.

A writer reads the key's current entry, and writes only if its own version is not older,
conditional on the revision it read (``Nats-Expected-Last-Subject-Sequence``): if another writer
got in between, it reads again and decides again. Readers of the bucket therefore only ever see
versions grow, whatever the order in which concurrent writers (replicas, retries) arrive.

The one rule, for every versioned document in KV (balance snapshots, the catalogue, key records):

* **A strictly older version never lands; an equal version does.** The version orders states of
  the source (a row's version, its ``updated_at``); two writes at the same version describe the
  same state, and whatever differs between them was derived later by the second writer (a key's
  rate limits from a catalogue changed since, a snapshot's ``as_of``). The later derivation is the
  more current one, and a full resync must be able to repair a record whose derived fields
  changed while its source did not. The price is at most one extra write when equals meet.
* **A stored value that does not parse is replaced** (a bucket edited by hand; nothing reads it).
* **When the key keeps changing under the writer** for ``attempts`` rounds, :class:`KvContended`
  (a :class:`~aiapi_shared.errors.RetryableError`) is raised: the write did not happen and the
  caller must retry (every caller's loop does), never assume it landed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from aiapi_shared.bus import KeyChanged, KeyNotFound, KeyValue
from aiapi_shared.errors import RetryableError

__all__ = ["KeyValue", "KvContended", "put_if_newer", "update_if_unchanged"]

V = TypeVar("V", int, datetime)

ATTEMPTS = 8


class KvContended(RetryableError):
    """Other writers changed the key on every attempt; this write did not happen."""


async def put_if_newer(
    kv: KeyValue,
    key: str,
    payload: bytes,
    *,
    version: V,
    version_of: Callable[[bytes], V],
    attempts: int = ATTEMPTS,
) -> bool:
    """Store ``payload`` at ``key`` unless the bucket holds a strictly newer version already.

    ``version_of`` reads the version out of a stored value (raising ``ValueError``, as pydantic's
    ``ValidationError`` does, on one it cannot read). Returns whether this write landed; raises
    :class:`KvContended` when other writers won every round.
    """
    for _ in range(attempts):
        try:
            entry = await kv.get(key)
        except KeyNotFound:  # absent, or deleted (``create`` also takes a deleted key)
            try:
                await kv.create(key, payload)
                return True
            except KeyChanged:
                continue
        stored = _stored_version(entry.value, version_of) if entry.value else None
        if stored is not None and stored > version:
            return False
        try:
            await kv.update(key, payload, last=entry.revision)
            return True
        except KeyChanged:
            continue
    raise KvContended(f"KV key {key} kept changing under compare-and-set", delay_s=1.0)


def _stored_version(value: bytes, version_of: Callable[[bytes], V]) -> V | None:
    try:
        return version_of(value)
    except ValueError:
        return None


async def update_if_unchanged(
    kv: KeyValue, key: str, payload: bytes, *, revision: int
) -> int | None:
    """Store ``payload`` only if ``key`` is still at ``revision`` (what this writer stored last,
    so no read is needed); returns the new revision, or ``None`` if someone wrote in between."""
    try:
        return await kv.update(key, payload, last=revision)
    except KeyChanged:
        return None
