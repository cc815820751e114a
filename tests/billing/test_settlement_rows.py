"""What one settlement batch writes, value for value: its rows travel to PostgreSQL as JSON
documents (``repository.json_rows``) and its events' digests are computed the fast way when the
text allows it (``settlement.content_hash``); neither may change a single value or byte."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from aiapi_billing.errors import UnpricedModel
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.settlement import Settler, content_hash
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events import RequestPriced, UsageRecorded
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.billing.conftest import usage_event

# Quotes, a backslash, control characters, DEL, non-ASCII: all must arrive as sent.
AWKWARD = 'k\x01\t\n"\\ é ✓ \x7f end'
# A moment with microseconds, away from UTC.
MOMENT = datetime(2026, 11, 27, 17, 29, 59, 123457, tzinfo=timezone(timedelta(hours=5.5)))


def _old_digest(event: UsageRecorded) -> str:
    """``content_hash`` as every earlier version computed it (json.dumps, sorted keys)."""
    payload = event.model_dump(mode="json")
    usage = payload["usage"]
    for name in ("web_search_requests", "web_fetch_requests"):
        if usage[name] == 0:
            del usage[name]
    for name in ("service_tier", "inference_geo", "speed"):
        if usage[name] == "":
            del usage[name]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    key_id=st.text(),
    tier=st.sampled_from(["", "standard", "priority"]),
    searches=st.integers(min_value=0, max_value=3),
    reserved=st.integers(min_value=0, max_value=10**15),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_the_digest_is_the_one_earlier_versions_stored(
    key_id: str, tier: str, searches: int, reserved: int, micros: int
) -> None:
    event = usage_event(
        "acc_digest", started_at=MOMENT.replace(microsecond=micros), web_search_requests=searches
    )
    usage = event.usage.model_copy(update={"service_tier": tier})
    event = event.model_copy(
        update={"key_id": key_id, "usage": usage, "lease_id": "lease_1", "lease_reserved": reserved}
    )
    assert content_hash(event) == _old_digest(event)


def test_awkward_text_keeps_its_digest() -> None:
    for text in (AWKWARD, "\x7f", "é", "plain", "\x1f"):
        event = usage_event("acc_digest").model_copy(update={"key_id": text})
        assert content_hash(event) == _old_digest(event)


async def _settle(
    db: psycopg.AsyncConnection[Any], settler: Settler, events: list[UsageRecorded]
) -> list[object]:
    async with db.transaction():
        result = await settler.settle_batch(db, events)  # type: ignore[arg-type]
    return result.outcomes


async def _rows(db: psycopg.AsyncConnection[Any], query: str, *params: Any) -> list[Any]:
    cur = await db.execute(query, params)
    return list(await cur.fetchall())


async def test_a_batch_writes_each_good_event_once_value_for_value(
    db: psycopg.AsyncConnection[Any],
) -> None:
    big = 10**14  # tokens: a cost past 2**53 (where a float would round), within a bigint
    awkward = usage_event(
        "acc_rows",
        started_at=MOMENT,
        input_tokens=big,
        output_tokens=7,
        cache_read_input_tokens=3,
        web_search_requests=2,
    ).model_copy(update={"key_id": AWKWARD})
    plain = usage_event("acc_rows", input_tokens=1000, output_tokens=500)
    unpriced = usage_event("acc_rows", model="no-such-model")
    batch = [awkward, awkward, unpriced, plain]
    settler = Settler(LiveCatalogue(default_catalogue()), low_threshold=0)

    outcomes = await _settle(db, settler, batch)
    assert outcomes[0] == "settled" and outcomes[1] == "duplicate" and outcomes[3] == "settled"
    assert isinstance(outcomes[2], UnpricedModel)
    again = await _settle(db, settler, batch)  # redelivered: nothing more
    assert again[0] == again[1] == again[3] == "duplicate"

    records = await _rows(
        db,
        "SELECT request_id, key_id, started_at, finished_at, input_tokens, output_tokens,"
        " cache_read_tokens, web_search_requests, hold_id, content_hash, cost, service_tier"
        " FROM usage_records ORDER BY request_id",
    )
    wanted = sorted([awkward, plain], key=lambda e: e.request_id)
    assert [r[:10] for r in records] == [
        (e.request_id, e.key_id, e.started_at, e.finished_at, e.usage.input_tokens,
         e.usage.output_tokens, e.usage.cache_read_input_tokens, e.usage.web_search_requests,
         None, _old_digest(e))
        for e in wanted
    ]  # fmt: skip
    assert records[[e.request_id for e in wanted].index(awkward.request_id)][2].microsecond == (
        MOMENT.astimezone(UTC).microsecond
    )
    costs = {str(r[0]): int(r[10]) for r in records}
    assert costs[awkward.request_id] > 2**53

    transfers = await _rows(
        db,
        "SELECT reference, amount, balance_after, memo FROM transfers"
        " WHERE kind = 'usage' ORDER BY id",
    )
    # In batch order, each with the balance after it (the account started at zero).
    first, second = costs[awkward.request_id], costs[plain.request_id]
    assert transfers == [
        (awkward.request_id, first, -first, awkward.model),
        (plain.request_id, second, -first - second, plain.model),
    ]

    payloads = [
        bytes(r[0])
        for r in await _rows(db, "SELECT payload FROM outbox WHERE subject = %s ORDER BY id",
                             RequestPriced.subject)
    ]  # fmt: skip
    priced = [RequestPriced.model_validate_json(p) for p in payloads]
    assert [(p.request_id, p.cost) for p in priced] == [
        (awkward.request_id, first),
        (plain.request_id, second),
    ]
    # Byte for byte what the event serialises to.
    assert payloads == [p.to_json() for p in priced]
