"""The one compare-and-set rule for versioned KV documents, against a real NATS KV bucket."""

from __future__ import annotations

import json

import pytest
from aiapi_shared.bus import Bus, KeyValue
from aiapi_shared.errors import RetryableError
from aiapi_shared.kv_versioned import ATTEMPTS, KvContended, put_if_newer


def _doc(version: int, body: str) -> bytes:
    return json.dumps({"version": version, "body": body}).encode()


def _version_of(value: bytes) -> int:
    document = json.loads(value)  # a ValueError on garbage, as pydantic's would be
    return int(document["version"])


async def _put(kv: KeyValue, version: int, body: str) -> bool:
    return await put_if_newer(
        kv, "doc", _doc(version, body), version=version, version_of=_version_of
    )


async def _body(kv: KeyValue) -> str:
    entry = await kv.get("doc")
    return str(json.loads(entry.value or b"{}")["body"])


async def test_newer_lands_older_does_not_and_equal_replaces(bus: Bus) -> None:
    kv = await bus.ensure_kv("aiapi_test_versioned")
    assert await _put(kv, 2, "first")  # absent: created
    assert not await _put(kv, 1, "older")
    assert await _body(kv) == "first"
    # The same version derived again (say, with limits from a changed catalogue) replaces it.
    assert await _put(kv, 2, "same state, derived again")
    assert await _body(kv) == "same state, derived again"
    assert await _put(kv, 3, "newer")
    assert await _body(kv) == "newer"


async def test_a_deleted_key_and_a_garbled_value_are_written_over(bus: Bus) -> None:
    kv = await bus.ensure_kv("aiapi_test_versioned")
    await kv.put("doc", b"{not json")
    assert await _put(kv, 1, "repaired")
    assert await _body(kv) == "repaired"
    await kv.delete("doc")
    assert await _put(kv, 1, "after a delete")
    assert await _body(kv) == "after a delete"


class _Contended:
    """A bucket where another writer gets in between every read and write of this one."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.reads = 0

    async def get(self, key: str) -> KeyValue.Entry:
        entry = await self._kv.get(key)
        self.reads += 1
        await self._kv.put(key, _doc(0, f"someone else #{self.reads}"))
        return entry

    async def create(self, key: str, value: bytes) -> int:
        return await self._kv.create(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        return await self._kv.update(key, value, last=last)


async def test_running_out_of_attempts_raises_a_retryable_error(bus: Bus) -> None:
    kv = await bus.ensure_kv("aiapi_test_versioned")
    await kv.put("doc", _doc(0, "start"))
    contended = _Contended(kv)
    with pytest.raises(KvContended) as raised:
        await put_if_newer(
            contended,  # type: ignore[arg-type]
            "doc",
            _doc(5, "mine"),
            version=5,
            version_of=_version_of,
        )
    assert isinstance(raised.value, RetryableError)
    assert contended.reads == ATTEMPTS
    assert (await _body(kv)).startswith("someone else")  # this write never landed
