"""The optional response store behind ``previous_response_id``: chains, owners, the byte bound."""

from __future__ import annotations

from typing import Any

import orjson
from aiapi_edge.response_store import ResponseStore


def turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}, {"type": "message", "content": text.upper()}]


def test_a_conversation_is_rebuilt_from_its_turns_for_its_account_only() -> None:
    store = ResponseStore(10_000)
    assert store.put("resp_1", "acct_a", None, turn("one"))
    assert store.put("resp_2", "acct_a", "resp_1", turn("two"))
    assert store.conversation("resp_2", "acct_a") == turn("one") + turn("two")
    assert store.conversation("resp_1", "acct_a") == turn("one")
    assert store.conversation("resp_2", "acct_b") is None
    assert store.conversation("resp_9", "acct_a") is None


def test_the_byte_bound_evicts_the_least_recently_used_turn() -> None:
    size = len(orjson.dumps(turn("one")))
    store = ResponseStore(3 * size)
    store.put("resp_1", "acct", None, turn("one"))
    store.put("resp_2", "acct", "resp_1", turn("two"))
    store.put("resp_x", "acct", None, turn("xxx"))
    assert store.conversation("resp_2", "acct") is not None  # resp_1 and resp_2 now used last
    store.put("resp_3", "acct", "resp_2", turn("333"))
    assert store.conversation("resp_x", "acct") is None  # evicted first
    assert store.conversation("resp_3", "acct") == turn("one") + turn("two") + turn("333")
    assert store.stored_bytes <= 3 * size and len(store) == 3
    store.put("resp_y", "acct", None, turn("yyy"))
    # The oldest turn went: what continued from it cannot be rebuilt any more.
    assert store.conversation("resp_3", "acct") is None


def test_a_turn_larger_than_the_bound_is_not_kept() -> None:
    store = ResponseStore(10)
    assert not store.put("resp_1", "acct", None, turn("too long to keep"))
    assert len(store) == 0 and store.stored_bytes == 0
