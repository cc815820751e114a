"""The operator console's questions to billing (aiapi_shared.console_api), against a month of
settled usage: the report's revenue is the ledger's, its upstream cost the list prices', in
every grouping; accounts rank and page by balance and spend; a request-id names its account."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_shared import billing_api
from aiapi_shared import console_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.events import DepositConfirmed, Record, UsageRecorded
from aiapi_shared.money import parse_usd

from tests.billing.conftest import admission, admit, credit, eventually, scalar, usage_event

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
# nano-USD per million tokens, from the shipped catalogue (input, output)
LIST_PRICES = {
    "claude-sonnet-4-6": (3_000_000_000, 15_000_000_000),
    "claude-haiku-4-5": (1_000_000_000, 5_000_000_000),
    "claude-opus-4-7": (5_000_000_000, 25_000_000_000),
}
CACHE_READ_BPS = 1000


def list_price(event: UsageRecorded) -> int:
    """The upstream's price of the usage, computed here from the catalogue's numbers (token
    counts are chosen so that every product is a whole number of nano-USD)."""
    inp, out = LIST_PRICES[event.model]
    u = event.usage
    total = u.input_tokens * inp + u.output_tokens * out
    total += u.cache_read_input_tokens * inp * CACHE_READ_BPS // 10_000
    assert total % 1_000_000 == 0
    return total // 1_000_000


def seeded_month() -> list[UsageRecorded]:
    """Three accounts over October (one on Pro), and one request on each side of the month."""
    events = []
    for day in range(31):
        start = OCTOBER + timedelta(days=day, hours=9)
        events.append(usage_event("acc_ra", request_id=f"req_a{day:02}", started_at=start))
        if day % 2 == 0:
            events.append(
                usage_event("acc_rb", request_id=f"req_b{day:02}", model="claude-haiku-4-5",
                            plan="pro", started_at=start + timedelta(hours=1),
                            input_tokens=2000, output_tokens=1000)
            )  # fmt: skip
        if day % 3 == 0:
            events.append(
                usage_event("acc_rc", request_id=f"req_c{day:02}", model="claude-opus-4-7",
                            started_at=start + timedelta(hours=14, minutes=59),
                            input_tokens=1000, output_tokens=200,
                            cache_read_input_tokens=10_000)
            )  # fmt: skip
    outside = [
        usage_event("acc_ra", request_id="req_sep", started_at=OCTOBER - timedelta(seconds=1)),
        usage_event("acc_ra", request_id="req_nov", started_at=NOVEMBER),
    ]
    return events + outside


async def ask(bus: Bus, subject: str, query: Record, reply: type[Any]) -> Any:
    data = await bus.request(subject, query.model_dump_json().encode(), timeout_s=30)
    return reply.model_validate_json(data)


async def report(bus: Bus, group_by: str, since: datetime, until: datetime) -> Any:
    query = api.UsageReportQuery(since=since, until=until, group_by=group_by)
    return await ask(bus, api.USAGE_REPORT_SUBJECT, query, api.UsageReportReply)


async def test_a_month_reports_the_ledgers_revenue_and_the_list_prices_in_every_grouping(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    for account in ("acc_ra", "acc_rb", "acc_rc"):
        await credit(bus, account, "100.00")
    events = seeded_month()
    await asyncio.gather(*(bus.publish_event(e) for e in events))

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == len(events))

    await eventually(settled, timeout_s=30)
    october = [e for e in events if OCTOBER <= e.started_at < NOVEMBER]
    ledger = await scalar(
        db,
        "SELECT sum(amount) FROM transfers WHERE kind = 'usage' AND reference = ANY(%s)",
        [e.request_id for e in october],
    )
    upstream = sum(list_price(e) for e in october)
    assert ledger > 0 and upstream > ledger  # both plans sell below the list price

    for group_by in ("day", "week", "month", "model", "plan", "account"):
        rows = (await report(bus, group_by, OCTOBER, NOVEMBER)).rows
        assert sum(r.revenue for r in rows) == ledger, group_by
        assert sum(r.upstream_cost for r in rows) == upstream, group_by
        assert sum(r.requests for r in rows) == len(october), group_by
        assert sum(r.unpriced_requests for r in rows) == 0

    by_day = (await report(bus, "day", OCTOBER, NOVEMBER)).rows
    assert [r.key for r in by_day] == [
        (date(2026, 10, 1) + timedelta(days=d)).isoformat() for d in range(31)
    ]
    first = by_day[0]  # all three accounts used the service on October 1st
    assert (first.requests, first.active_accounts) == (3, 3)
    assert first.meters.cache_read_tokens == 10_000
    assert first.meters.input_tokens == 1000 + 2000 + 1000

    by_week = (await report(bus, "week", OCTOBER, NOVEMBER)).rows
    assert all(date.fromisoformat(r.key).weekday() == 0 for r in by_week)  # Mondays
    assert by_week[0].key == "2026-09-28"  # the week October 1st (a Thursday) falls in

    by_model = {r.key: r for r in (await report(bus, "model", OCTOBER, NOVEMBER)).rows}
    counts = Counter(e.model for e in october)
    assert {k: r.requests for k, r in by_model.items()} == counts
    for model, row in by_model.items():
        assert row.upstream_cost == sum(list_price(e) for e in october if e.model == model)

    by_plan = {r.key: r for r in (await report(bus, "plan", OCTOBER, NOVEMBER)).rows}
    assert set(by_plan) == {"basic", "pro"}
    assert by_plan["pro"].active_accounts == 1
    pro = [e for e in october if e.plan == "pro"]
    pro_ledger = await scalar(
        db,
        "SELECT sum(amount) FROM transfers WHERE kind = 'usage' AND reference = ANY(%s)",
        [e.request_id for e in pro],
    )
    assert by_plan["pro"].revenue == pro_ledger

    by_account = {r.key: r for r in (await report(bus, "account", OCTOBER, NOVEMBER)).rows}
    assert {k: r.requests for k, r in by_account.items()} == {
        "acc_ra": 31, "acc_rb": 16, "acc_rc": 11,
    }  # fmt: skip

    # The request one second before October and the one at November's first instant are not in.
    month = (await report(bus, "month", OCTOBER, NOVEMBER)).rows
    assert [r.key for r in month] == ["2026-10-01"]


async def test_deposits_by_asset_and_plan_sales_are_reported_when_booked(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    deposits = [
        ("acc_da", "USDT", "25.5", "ethereum:USDT:0xd1:0"),
        ("acc_da", "ETH", "30.00", "ethereum:ETH:0xd2:0"),
        ("acc_db", "USDT", "4.5", "ethereum:USDT:0xd3:1"),
    ]
    for account, asset, usd, deposit_id in deposits:
        await bus.publish_event(
            DepositConfirmed(
                deposit_id=deposit_id, account_id=account, asset=asset,
                network="ethereum", tx_hash=deposit_id.split(":")[2], position=0, amount=usd,
                usd=parse_usd(usd), rate_usd=parse_usd("1.00"),
            )
        )  # fmt: skip

    async def credited() -> bool:
        found = await scalar(db, "SELECT count(*) FROM transfers WHERE kind = 'deposit'")
        return bool(found == len(deposits))

    await eventually(credited)
    purchase = billing_api.PurchasePlanCommand(account_id="acc_da", plan="pro")
    bought = await ask(
        bus, billing_api.PURCHASE_PLAN_SUBJECT, purchase, billing_api.PurchasePlanReply
    )
    now = datetime.now(UTC)
    today = (await report(bus, "day", now - timedelta(days=1), now + timedelta(days=1))).rows
    assert sum(r.plan_sales for r in today) == bought.price == parse_usd("19.00")
    totals: Counter[str] = Counter()
    for row in today:
        totals.update(row.deposits)
    assert totals == {"USDT": parse_usd("30.00"), "ETH": parse_usd("30.00")}

    accounts = {r.key: r for r in (await report(bus, "account", now - timedelta(days=1), now)).rows}
    assert accounts["acc_da"].deposits == {"USDT": parse_usd("25.5"), "ETH": parse_usd("30.00")}
    assert accounts["acc_da"].plan_sales == parse_usd("19.00")
    assert accounts["acc_db"].requests == 0  # a row for its deposit alone

    # A model's or a plan's row has no ledger movements to show.
    by_model = (await report(bus, "model", now - timedelta(days=1), now)).rows
    assert by_model == []


async def test_accounts_rank_by_balance_and_spend_in_pages(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    balances = {
        "acc_k1": "5.00", "acc_k2": "50.00", "acc_k3": "20.00", "acc_k4": "20.00", "acc_k5": "20.00",
    }  # fmt: skip
    for account, usd in balances.items():
        await credit(bus, account, usd)
    recent = datetime.now(UTC) - timedelta(hours=1)
    spend = {"acc_k1": 3, "acc_k2": 1, "acc_k3": 0, "acc_k4": 2, "acc_k5": 0}  # requests each
    events = [
        usage_event(account, started_at=recent) for account, n in spend.items() for _ in range(n)
    ]
    await asyncio.gather(*(bus.publish_event(e) for e in events))

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == len(events))

    await eventually(settled)

    async def walk(sort: str, order: str) -> list[api.AccountFigures]:
        walked: list[api.AccountFigures] = []
        position: dict[str, Any] = {}
        while True:
            query = api.AccountListQuery(
                account_ids=sorted(balances), sort=sort, order=order, limit=1, **position
            )
            page = await ask(bus, api.ACCOUNT_LIST_SUBJECT, query, api.AccountListReply)
            walked += page.rows
            if not page.more:
                return walked
            last = page.rows[-1]
            value = last.balance if sort == "balance" else last.spend
            position = {"after_value": value, "after_id": last.account_id}

    by_balance = await walk("balance", "desc")
    # The same figure twice (k3 and k5): the id decides, in the same direction.
    assert [r.account_id for r in by_balance] == ["acc_k2", "acc_k5", "acc_k3", "acc_k4", "acc_k1"]
    by_spend = await walk("spend", "asc")
    assert [r.account_id for r in by_spend] == ["acc_k3", "acc_k5", "acc_k2", "acc_k4", "acc_k1"]
    k1 = next(r for r in by_spend if r.account_id == "acc_k1")
    debits = await scalar(
        db, "SELECT sum(amount) FROM transfers WHERE kind = 'usage' AND account_id = 'acc_k1'"
    )
    assert k1.spend == debits and k1.balance == parse_usd("5.00") - debits

    # Named accounts billing never heard of are listed with zeros; every account without names.
    named = api.AccountListQuery(account_ids=["acc_k1", "acc_unheard"])
    reply = await ask(bus, api.ACCOUNT_LIST_SUBJECT, named, api.AccountListReply)
    assert [(r.account_id, r.balance) for r in reply.rows] == [
        ("acc_k1", k1.balance), ("acc_unheard", 0),
    ]  # fmt: skip
    everyone = api.AccountListQuery(sort="balance", limit=100)
    reply = await ask(bus, api.ACCOUNT_LIST_SUBJECT, everyone, api.AccountListReply)
    assert {r.account_id for r in reply.rows} >= set(balances)


async def test_a_request_id_names_its_account_settled_or_still_held(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_o1", "10.00")
    await credit(bus, "acc_o2", "10.00")
    await bus.publish_event(usage_event("acc_o1", request_id="req_settled01"))
    held = await admit(bus, admission("acc_o2", request_id="req_inflight01"))
    assert held.decision == "admit"

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == 1)

    await eventually(settled)

    async def owner(request_id: str) -> str | None:
        query = api.RequestOwnerQuery(request_id=request_id)
        reply = await ask(bus, api.REQUEST_OWNER_SUBJECT, query, api.RequestOwnerReply)
        return reply.account_id  # type: ignore[no-any-return]

    assert await owner("req_settled01") == "acc_o1"
    assert await owner("req_inflight01") == "acc_o2"
    assert await owner("req_nobody") is None


async def test_the_live_view_counts_the_last_minute_and_the_backlog(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_lv", "10.00")
    now = datetime.now(UTC)
    failed = usage_event("acc_lv", started_at=now).model_copy(
        update={"outcome": "upstream_error", "status_code": 529}
    )
    old = usage_event("acc_lv", started_at=now - timedelta(hours=2))
    await asyncio.gather(
        *(bus.publish_event(e) for e in (usage_event("acc_lv", started_at=now), failed, old))
    )

    async def settled() -> bool:
        return bool(await scalar(db, "SELECT count(*) FROM usage_records") == 3)

    await eventually(settled)
    reply = await ask(bus, api.LIVE_SUBJECT, api.LiveQuery(window_s=600), api.LiveReply)
    assert reply.requests == 2  # the one two hours ago is outside the window
    assert reply.by_status_class == {"2xx": 1, "5xx": 1}
    assert reply.by_outcome == {"ok": 1, "upstream_error": 1}
    assert reply.settlement_lag_s is not None and reply.settlement_lag_s >= 0
    assert reply.pending_usage_events == 0  # everything published was settled and acknowledged
