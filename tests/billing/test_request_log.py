"""The customer's request log over NATS: newest first, filters, keyset pages, per-key totals,
and never another account's records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus

from tests.billing.conftest import credit, eventually, scalar, usage_event

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


async def _ask(bus: Bus, subject: str, body: api.Record) -> bytes:
    return await bus.request(subject, body.model_dump_json().encode(), timeout_s=10)


async def listed(bus: Bus, **query: Any) -> api.RequestListReply:
    data = await _ask(bus, api.REQUEST_LIST_SUBJECT, api.RequestListQuery(**query))
    return api.RequestListReply.model_validate_json(data)


async def test_the_request_log_pages_filters_and_stays_within_the_account(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_l", "10.00")
    await credit(bus, "acc_x", "10.00")
    plan = [  # (minutes after T0, key, model); two at the same instant to test the tie-break
        (0, "key_a", "claude-sonnet-4-6"),
        (1, "key_b", "claude-haiku-4-5"),
        (2, "key_a", "claude-haiku-4-5"),
        (2, "key_a", "claude-sonnet-4-6"),
        (3, "key_b", "claude-sonnet-4-6"),
    ]
    events = [
        usage_event("acc_l", request_id=f"req_{i}", model=model,
                    started_at=T0 + timedelta(minutes=m)).model_copy(update={"key_id": key})
        for i, (m, key, model) in enumerate(plan)
    ]  # fmt: skip
    stranger = usage_event("acc_x", request_id="req_x", started_at=T0)
    await asyncio.gather(*(bus.publish_event(e) for e in [*events, stranger]))

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == 6)

    await eventually(settled)
    everything = await listed(bus, account_id="acc_l")
    ids = [r.id for r in everything.records]
    assert ids == ["req_4", "req_3", "req_2", "req_1", "req_0"]  # newest first, ties by id
    assert not everything.more
    first = everything.records[0]
    assert (first.key_id, first.model, first.status_code, first.route) == (
        "key_b", "claude-sonnet-4-6", 200, "anthropic",
    )  # fmt: skip
    assert first.cost_usd > 0 and first.usage.input_tokens == 1000

    # Keyset pages of two walk the same order, each exactly once.
    walked: list[str] = []
    position: dict[str, Any] = {}
    while True:
        page = await listed(bus, account_id="acc_l", limit=2, **position)
        walked += [r.id for r in page.records]
        if not page.more:
            break
        last = page.records[-1]
        position = {"before_started_at": last.created_at, "before_request_id": last.id}
    assert walked == ids

    by_key = await listed(bus, account_id="acc_l", key_id="key_a")
    assert [r.id for r in by_key.records] == ["req_3", "req_2", "req_0"]
    by_model = await listed(bus, account_id="acc_l", model="claude-haiku-4-5")
    assert [r.id for r in by_model.records] == ["req_2", "req_1"]
    window = await listed(
        bus, account_id="acc_l", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
    )
    assert [r.id for r in window.records] == ["req_3", "req_2", "req_1"]
    assert [r.id for r in (await listed(bus, account_id="acc_x")).records] == ["req_x"]
    assert (await listed(bus, account_id="acc_nobody")).records == []

    half = api.RequestListQuery(account_id="acc_l", before_request_id="req_3")
    refused = api.ApiError.model_validate_json(await _ask(bus, api.REQUEST_LIST_SUBJECT, half))
    assert refused.status == 400

    daily = api.DailyKeyUsageReply.model_validate_json(
        await _ask(bus, api.DAILY_KEY_USAGE_SUBJECT, api.DailyUsageQuery(account_id="acc_l"))
    )
    totals: dict[str, int] = {}
    for row in daily.rows:
        totals[row.key_id] = totals.get(row.key_id, 0) + row.cost
    costs = {r.id: (r.key_id, r.cost_usd) for r in everything.records}
    for key in ("key_a", "key_b"):
        assert totals[key] == sum(c for k, c in costs.values() if k == key)
    assert sum(r.requests for r in daily.rows) == 5
    # The rollup equals grouping the records themselves (the trigger missed nothing).
    rollup = await db.execute(
        "SELECT account_id, day, model, key_id, requests, input_tokens, cost FROM usage_daily"
        " ORDER BY 1, 2, 3, 4"
    )
    grouped = await db.execute(
        "SELECT account_id, (started_at AT TIME ZONE 'UTC')::date, model, key_id, count(*),"
        " sum(input_tokens), sum(cost) FROM usage_records GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    assert await rollup.fetchall() == await grouped.fetchall()

    # The charts' series: per day by model and by key, the account's own, adding up to the log.
    series = api.UsageSeriesReply.model_validate_json(
        await _ask(bus, api.USAGE_SERIES_SUBJECT, api.DailyUsageQuery(account_id="acc_l", days=2))
    )
    assert series.first_day == datetime.now(UTC).date() - timedelta(days=1)
    assert series.days == 2
    assert [s.name for s in series.by_model] == ["claude-haiku-4-5", "claude-sonnet-4-6"]
    assert [s.name for s in series.by_key] == ["key_a", "key_b"]
    for group, name_of in ((series.by_model, "model"), (series.by_key, "key")):
        for s in group:
            assert len(s.cost) == len(s.tokens) == len(s.requests) == 2
            mine = [
                r for r in everything.records if (r.model, r.key_id)[name_of == "key"] == s.name
            ]
            assert sum(s.cost) == sum(r.cost_usd for r in mine)
            assert sum(s.requests) == len(mine)
            assert sum(s.tokens) == sum(
                r.usage.input_tokens + r.usage.output_tokens + r.usage.cache_read_input_tokens
                + r.usage.cache_creation_5m_input_tokens + r.usage.cache_creation_1h_input_tokens
                for r in mine
            )  # fmt: skip
    assert sum(sum(s.requests) for s in series.by_model) == 5
    nobody = api.UsageSeriesReply.model_validate_json(
        await _ask(bus, api.USAGE_SERIES_SUBJECT, api.DailyUsageQuery(account_id="acc_nobody"))
    )
    assert (nobody.by_model, nobody.by_key, nobody.days) == ([], [], 30)
