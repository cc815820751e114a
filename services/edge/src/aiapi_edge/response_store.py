"""The optional, bounded store of finished responses that ``previous_response_id`` reads.

Off unless the operator sets ``AIAPI_EDGE_RESPONSES_STORE_BYTES``. Each entry is one turn: the
items the client sent (``input``) and the items the model answered (``output``), with the id of the
response it continued; a conversation is rebuilt by walking those links. Entries are the caller's
account's alone (another account's id is not found), kept in memory on this edge replica (lost on
restart; behind a load balancer with several edges, continuing a response needs the same replica),
and evicted least recently used first once their JSON exceeds the byte bound. A conversation
whose oldest turn was evicted can no longer be continued: the caller gets the same "not found".
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Turn:
    account_id: str
    previous: str | None
    items: list[JSON]
    size: int


class ResponseStore:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._turns: OrderedDict[str, _Turn] = OrderedDict()
        self._bytes = 0

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._turns)

    def put(self, resp_id: str, account_id: str, previous: str | None, items: list[JSON]) -> bool:
        """Keep one finished turn; False when it alone exceeds the bound (then it is not kept)."""
        size = len(orjson.dumps(items))
        if size > self._max_bytes:
            return False
        old = self._turns.pop(resp_id, None)
        if old is not None:
            self._bytes -= old.size
        self._turns[resp_id] = _Turn(account_id, previous, items, size)
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, evicted = self._turns.popitem(last=False)
            self._bytes -= evicted.size
        return True

    def conversation(self, resp_id: str, account_id: str) -> list[JSON] | None:
        """Every item of the conversation up to and including ``resp_id``, oldest first; None if
        it (or a turn before it) is not stored for this account."""
        turns: list[_Turn] = []
        current: str | None = resp_id
        seen: set[str] = set()
        while current is not None:
            turn = self._turns.get(current)
            if turn is None or turn.account_id != account_id or current in seen:
                return None
            seen.add(current)
            turns.append(turn)
            current = turn.previous
        for used in seen:  # recently continued: evicted last
            self._turns.move_to_end(used)
        return [item for turn in reversed(turns) for item in turn.items]
