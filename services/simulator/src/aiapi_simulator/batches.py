"""The Message Batches API, simulated: batches per upstream key, ending after a short, settable
time, with one result per request (and its usage, ``service_tier: "batch"``).

Batches belong to the key that created them (the real API keeps them per organisation): another
key gets 404 for them, and the list shows only its own. Each request of a batch finishes at an
even share of the batch's processing time (``processing_s``, set per simulator and changeable at
run time through ``/_sim/batches``); a cancel ends the batch ``cancel_s`` later, with the requests
not finished by the cancel marked ``canceled``. A request whose params the Messages API would
refuse is ``errored`` (the batch itself is accepted, as the real API does). The clock is injected:
the module does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from aiapi_simulator.errors import ApiError, error_body, invalid_request

EXPIRY = timedelta(hours=24)
MAX_REQUESTS = 100_000
_CUSTOM_ID_MAX = 64

# A request's params → its whole result object ({"type": "succeeded", "message": …}).
Answer = Callable[[Any], dict[str, Any]]


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class _Item:
    custom_id: str
    params: Any
    done_at: float  # when this request finishes (if the batch is not cancelled before)
    result: dict[str, Any] | None = None


@dataclass(slots=True)
class Batch:
    id: str
    owner: str  # the upstream key that created it
    created_at: float
    items: list[_Item]
    seq: int
    cancel_at: float | None = None
    end_at: float = 0.0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ended(self, now: float) -> bool:
        return now >= self.end_at

    def status(self, now: float) -> str:
        if self.ended(now):
            return "ended"
        return "canceling" if self.cancel_at is not None else "in_progress"

    def outcome(self, item: _Item) -> str:
        """``succeeded`` / ``errored`` / ``canceled`` once the batch has ended."""
        if self.cancel_at is not None and item.done_at > self.cancel_at:
            return "canceled"
        assert item.result is not None
        return str(item.result["type"])

    def to_json(self, now: float, results_base: str) -> dict[str, Any]:
        ended = self.ended(now)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for item in self.items:
            counts[self.outcome(item) if ended else "processing"] += 1
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status(now),
            "request_counts": counts,
            "ended_at": _rfc3339(self.end_at) if ended else None,
            "created_at": _rfc3339(self.created_at),
            "expires_at": _rfc3339(self.created_at + EXPIRY.total_seconds()),
            "archived_at": None,
            "cancel_initiated_at": None if self.cancel_at is None else _rfc3339(self.cancel_at),
            "results_url": f"{results_base}/v1/messages/batches/{self.id}/results"
            if ended
            else None,
        }

    def results_jsonl(self) -> bytes:
        lines = []
        for item in self.items:
            outcome = self.outcome(item)
            result = item.result if outcome != "canceled" else {"type": "canceled"}
            lines.append(orjson.dumps({"custom_id": item.custom_id, "result": result}))
        return b"\n".join(lines) + b"\n"


def _requests(body: Any) -> list[tuple[str, Any]]:
    """The ``(custom_id, params)`` pairs of a create body; the shape errors the real API gives."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise invalid_request("requests: Field required")
    requests = body["requests"]
    if not requests:
        raise invalid_request("requests: List should have at least 1 item")
    if len(requests) > MAX_REQUESTS:
        raise invalid_request(f"requests: at most {MAX_REQUESTS} requests per batch")
    pairs: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, dict):
            raise invalid_request(f"requests.{index}: Input should be an object")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= _CUSTOM_ID_MAX:
            raise invalid_request(f"requests.{index}.custom_id: 1 to 64 characters")
        if custom_id in seen:
            raise invalid_request(f"requests.{index}.custom_id: duplicate custom_id {custom_id}")
        if not isinstance(request.get("params"), dict):
            raise invalid_request(f"requests.{index}.params: Field required")
        seen.add(custom_id)
        pairs.append((custom_id, request["params"]))
    return pairs


def errored(error: ApiError) -> dict[str, Any]:
    """A request's result when the Messages API refused it."""
    return {
        "type": "errored",
        "error": orjson.loads(error_body(error.error_type, error.message, None)),
    }


class BatchBook:
    """Every batch of this simulator, by id."""

    def __init__(
        self,
        processing_s: float,
        *,
        cancel_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.processing_s = processing_s
        self.cancel_s = cancel_s
        self._clock = clock
        self._batches: dict[str, Batch] = {}
        self._seq = 0

    def create(self, owner: str, body: Any, batch_id: str, answer: Answer) -> Batch:
        pairs = _requests(body)
        now = self._clock()
        share = self.processing_s / len(pairs)
        items = [
            _Item(custom_id, params, now + share * (index + 1))
            for index, (custom_id, params) in enumerate(pairs)
        ]
        for item in items:
            item.result = answer(item.params)
        self._seq += 1
        batch = Batch(batch_id, owner, now, items, self._seq, end_at=now + self.processing_s)
        self._batches[batch_id] = batch
        return batch

    def get(self, owner: str, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None or batch.owner != owner:
            raise ApiError(404, "not_found_error", f"message_batch: {batch_id} not found")
        return batch

    def cancel(self, owner: str, batch_id: str) -> Batch:
        batch = self.get(owner, batch_id)
        now = self._clock()
        if batch.cancel_at is None and not batch.ended(now):
            batch.cancel_at = now
            batch.end_at = min(batch.end_at, now + self.cancel_s)
        return batch

    def delete(self, owner: str, batch_id: str) -> None:
        batch = self.get(owner, batch_id)
        if not batch.ended(self._clock()):
            raise invalid_request(
                f"Message Batch {batch_id} cannot be deleted while it is still processing."
            )
        del self._batches[batch_id]

    def results(self, owner: str, batch_id: str) -> bytes:
        batch = self.get(owner, batch_id)
        if not batch.ended(self._clock()):
            raise invalid_request(f"Message Batch {batch_id} has not ended yet.")
        return batch.results_jsonl()

    def page(
        self, owner: str, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[Batch], bool]:
        """Newest first; ``after_id`` pages towards older batches, ``before_id`` towards newer."""
        mine = sorted((b for b in self._batches.values() if b.owner == owner), key=lambda b: -b.seq)
        if after_id is not None:
            cursor = self.get(owner, after_id).seq
            older = [b for b in mine if b.seq < cursor]
            return older[:limit], len(older) > limit
        if before_id is not None:
            cursor = self.get(owner, before_id).seq
            newer = [b for b in mine if b.seq > cursor]
            return newer[-limit:], len(newer) > limit
        return mine[:limit], len(mine) > limit

    def now(self) -> float:
        return self._clock()

    def clear(self) -> None:
        self._batches.clear()
