"""Meters beyond tokens settle exactly at the catalogue's price, and each record keeps its meters
and the upstream's list cost (the price before the plan's discount) for margin reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiapi_billing.service import Service
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue, MeterPoint, default_catalogue
from aiapi_shared.money import parse_usd

from tests.billing.conftest import billing_settings, credit, eventually, scalar, usage_event


def priority_priced() -> Catalogue:
    shipped = default_catalogue()
    point = MeterPoint(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_bps=12_500, output_bps=12_500
    )
    return shipped.model_copy(
        update={"meters": {**shipped.meters, "service_tier:priority": (point,)}}
    )


@pytest.fixture
async def priced(migrated: str, nats_url: str) -> AsyncIterator[Service]:
    service = Service(billing_settings(migrated, nats_url), priority_priced())
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_each_meter_is_billed_exactly_and_the_list_cost_is_kept(
    priced: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_m", "10.00")
    # The operator sells Sonnet's 1M window: the long-context premium applies above 200K input.
    await db.execute(
        "UPDATE catalogue_models SET context_window = 1000000 WHERE id = 'claude-sonnet-4-6'"
    )
    searches = usage_event("acc_m", input_tokens=1000, output_tokens=500, web_search_requests=3)
    long = usage_event("acc_m", input_tokens=250_000, output_tokens=1000)
    priority = usage_event("acc_m", input_tokens=1000, output_tokens=500, service_tier="priority")  # type: ignore[arg-type]
    expected = {
        searches.request_id: (parse_usd("0.01215"), parse_usd("0.0405")),
        long.request_id: (parse_usd("0.45675"), parse_usd("1.5225")),
        priority.request_id: (parse_usd("0.0039375"), parse_usd("0.013125")),
    }
    for event in (searches, long, priority):
        await bus.publish_event(event)
    await eventually(lambda: _settled(db, 3))
    cur = await db.execute("SELECT request_id, cost, list_cost FROM usage_records")
    assert {str(r[0]): (int(r[1]), int(r[2])) for r in await cur.fetchall()} == expected
    balance = await scalar(db, "SELECT credits - debits FROM accounts WHERE account_id = 'acc_m'")
    assert balance == parse_usd("10.00") - sum(cost for cost, _ in expected.values())
    query = api.RequestRecordQuery(account_id="acc_m", request_id=searches.request_id)
    reply = await bus.request(
        api.REQUEST_RECORD_SUBJECT, query.model_dump_json().encode(), timeout_s=10
    )
    record = api.RequestRecordReply.model_validate_json(reply)
    assert record.usage.web_search_requests == 3 and record.cost_usd == parse_usd("0.01215")


async def test_a_meter_without_a_price_waits_for_one_and_is_never_billed_at_a_guess(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_w", "1.00")
    waiting = usage_event("acc_w", speed="fast")  # type: ignore[arg-type]
    priced_after = usage_event("acc_w")
    await bus.publish_event(waiting)
    await bus.publish_event(priced_after)
    await eventually(lambda: _settled(db, 1))
    assert await scalar(db, "SELECT count(*) FROM usage_records") == 1
    assert await scalar(db, "SELECT request_id FROM usage_records") == priced_after.request_id


async def _settled(db: psycopg.AsyncConnection[Any], count: int) -> bool:
    return int(await scalar(db, "SELECT count(*) FROM usage_records")) >= count


async def test_the_hold_covers_the_server_tools_worst_case_after_the_discount(
    billing: Service, bus: Bus
) -> None:
    from tests.billing.conftest import admission, admit

    await credit(bus, "acc_h", "1.00")
    plain = await admit(bus, admission("acc_h", max_tokens=100, estimated_input_tokens=100))
    request = admission("acc_h", max_tokens=100, estimated_input_tokens=100)
    tooled = await admit(bus, request.model_copy(update={"server_tools_nano": parse_usd("0.05")}))
    # Basic plan: 5 searches at 0.01 USD list, 30% of it held on top of the tokens.
    assert tooled.hold_amount - plain.hold_amount == parse_usd("0.015")
