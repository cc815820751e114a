"""The operator console's API (routes_search, routes_reports) on the real peers: billing started
in-process and payments' request/reply API on its own repository, over one NATS and PostgreSQL.

Search by each identifier an operator may hold, cursor pages in every sort, one account's whole
picture, the business report in JSON and CSV, and a search that goes on when a peer is down."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiapi_billing.service import Service as Billing
from aiapi_billing.service import prepare_database
from aiapi_payments.api import PaymentsApi
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, DepositState
from aiapi_payments.repository import AccountDeposit, Repository
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.money import format_usd, parse_usd

from tests.accounts.conftest import ADMIN, Running
from tests.billing.conftest import billing_settings, eventually, usage_event
from tests.payments.test_api import NOW, both_chains


@dataclass
class Console:
    accounts: Running
    bus: Bus
    payments: Repository
    database_url: str

    async def search(self, **params: str) -> dict[str, Any]:
        answer = await self.accounts.admin.get("/admin/v1/accounts", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def found_ids(self, q: str) -> list[tuple[str, list[str]]]:
        return [(row["id"], row["matched"]) for row in (await self.search(q=q))["data"]]

    async def credit(self, account_id: str, usd: str, reason: str = "console test") -> None:
        answer = await self.accounts.admin.post(
            f"/admin/v1/accounts/{account_id}/adjustments",
            json={"amount_usd": usd, "reason": reason},
            headers=ADMIN,
        )
        assert answer.status_code == 201, answer.text

    async def settled(self, count: int) -> None:
        async def done() -> bool:
            async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
                cur = await conn.execute("SELECT count(*) FROM billing.usage_records")
                row = await cur.fetchone()
            return row is not None and row[0] == count

        await eventually(done, timeout_s=30)


@pytest.fixture
async def console(
    database_url: str, nats_url: str, bus: Bus, running: Running
) -> AsyncIterator[Console]:
    await prepare_database(database_url, default_catalogue())
    billing = Billing(billing_settings(database_url, nats_url))
    await billing.start()
    await migrate(database_url, schema="payments", package="aiapi_payments.migrations")
    try:
        async with open_pool(database_url, schema="payments") as pool:
            repository = Repository(pool)
            await PaymentsApi(repository, both_chains(), lambda: NOW).serve(bus)
            yield Console(running, bus, repository, database_url)
    finally:
        await billing.stop()


async def test_an_account_is_found_by_every_identifier_an_operator_may_hold(
    console: Console,
) -> None:
    running = console.accounts
    alice = await running.new_account("alice.support@example.com")
    bob = await running.new_account("bob@example.org")
    carol = await running.new_account("carol@example.net")
    key = await running.new_key(alice)
    await console.credit(bob, "5.00")
    request_id = "req_00c0ffee00c0ffee00c0ffee"
    await console.bus.publish_event(usage_event(bob, request_id=request_id))
    await console.settled(1)
    listed = await running.admin.get(f"/admin/v1/accounts/{carol}/deposit-addresses", headers=ADMIN)
    address = next(a["address"] for a in listed.json() if a["network"] == "ethereum")
    tx = "0x" + "7e" * 32
    deposit = Deposit(
        key=DepositKey(ChainNetwork.ETHEREUM, Asset.USDT, tx, 0),
        address=address,
        amount=25_000_000,
        state=DepositState.DETECTED,
        first_seen_at=NOW,
        block_number=10,
        confirmations=1,
    )
    await console.payments.commit_watch(
        cursor=None, changes=[AccountDeposit(carol, deposit)], events=[]
    )

    assert await console.found_ids("support@") == [(alice, ["email"])]
    assert await console.found_ids("ALICE.SUPPORT") == [(alice, ["email"])]  # any case
    assert await console.found_ids(bob) == [(bob, ["id"])]
    hint = key["key"][-4:]
    assert await console.found_ids(f"sk-cc-...{hint}") == [(alice, ["key"])]
    assert await console.found_ids(key["key"]) == [(alice, ["key"])]  # a whole key, by its hash
    assert await console.found_ids(key["id"]) == [(alice, ["key"])]
    assert await console.found_ids(request_id) == [(bob, ["request_id"])]
    assert await console.found_ids(address.lower()) == [(carol, ["deposit_address"])]
    assert await console.found_ids(tx) == [(carol, ["tx_hash"])]
    assert await console.found_ids("example.") == sorted(
        [(alice, ["email"]), (bob, ["email"]), (carol, ["email"])],
        key=lambda found: [alice, bob, carol][::-1].index(found[0]),
    )  # newest first
    assert await console.found_ids("100%_sure") == []  # LIKE wildcards are taken literally
    assert await console.found_ids("req_ffffffffffffffffffffffff") == []

    row = (await console.search(q=request_id))["data"][0]
    assert row["email"] == "bob@example.org"
    assert parse_usd(row["balance_usd"]) < parse_usd("5.00")  # the request was paid for
    assert parse_usd(row["spend_usd"]) == parse_usd("5.00") - parse_usd(row["balance_usd"])


async def test_pages_walk_every_account_once_in_each_sort(console: Console) -> None:
    running = console.accounts
    credits = ["3.00", "9.00", "1.00", "7.00", "5.00", "7.00", "2.00"]
    ids = []
    for i, usd in enumerate(credits):
        account = await running.new_account(f"page{i}@paging.example")
        await console.credit(account, usd)
        ids.append(account)
    await running.new_account("outsider@elsewhere.example")

    async def walk(**params: str) -> list[str]:
        walked: list[str] = []
        cursor: str | None = None
        while True:
            page = await console.search(
                q="@paging.example", limit="3", **params, **({"cursor": cursor} if cursor else {})
            )
            assert len(page["data"]) <= 3
            walked += [row["id"] for row in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return walked

    assert await walk(sort="created") == ids[::-1]
    assert await walk(sort="created", order="asc") == ids
    by_balance = sorted(zip(credits, ids, strict=True), key=lambda p: (parse_usd(p[0]), p[1]))
    assert await walk(sort="balance") == [account for _, account in by_balance[::-1]]
    assert await walk(sort="balance", order="asc") == [account for _, account in by_balance]
    assert len(await walk(sort="spend")) == len(ids)

    # Without a search text every account is listed; a cursor is bound to its sort.
    everyone = await console.search(limit="200")
    assert len(everyone["data"]) == len(ids) + 1
    first = await console.search(q="@paging.example", limit="2", sort="balance")
    wrong = await running.admin.get(
        "/admin/v1/accounts",
        params={"cursor": first["next_cursor"], "sort": "created"},
        headers=ADMIN,
    )
    assert wrong.status_code == 400
    for bad in ({"sort": "name"}, {"order": "up"}, {"limit": "0"}, {"cursor": "!!"}):
        refused = await running.admin.get("/admin/v1/accounts", params=bad, headers=ADMIN)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["type"] == "invalid_request_error"
    assert (await running.admin.get("/admin/v1/accounts")).status_code == 401


async def test_an_accounts_page_holds_its_figures_keys_ledger_usage_and_deposits(
    console: Console,
) -> None:
    running = console.accounts
    account = await running.new_account("whole@example.com", plan="pro")
    key = await running.new_key(account, "build server")
    await console.credit(account, "12.50", reason="goodwill after the outage")
    await console.bus.publish_event(
        usage_event(account, request_id="req_0000whole0000", started_at=datetime.now(UTC))
    )
    await console.settled(1)
    answer = await running.admin.get(f"/admin/v1/accounts/{account}/overview", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["account"]["plan"] == "pro" and seen["unavailable"] == []
    assert [k["id"] for k in seen["keys"]] == [key["id"]]
    kinds = [(e["kind"], e["memo"]) for e in seen["ledger"]]
    assert ("adjustment", "goodwill after the outage") in kinds
    assert [u["requests"] for u in seen["usage"]] == [1]
    cost = parse_usd(seen["usage"][0]["cost"])
    assert parse_usd(seen["balance_usd"]) == parse_usd("12.50") - cost
    assert parse_usd(seen["spend_usd"]) == cost
    assert seen["deposits"] == []

    log = await running.admin.get(f"/admin/v1/accounts/{account}/requests", headers=ADMIN)
    assert [r["request_id"] for r in log.json()["data"]] == ["req_0000whole0000"]
    as_csv = await running.admin.get(
        f"/admin/v1/accounts/{account}/requests", params={"format": "csv"}, headers=ADMIN
    )
    assert "req_0000whole0000" in as_csv.text
    ledger = await running.admin.get(
        f"/admin/v1/accounts/{account}/ledger", params={"limit": "1"}, headers=ADMIN
    )
    assert len(ledger.json()["entries"]) == 1
    missing = await running.admin.get("/admin/v1/accounts/acc_nobody/overview", headers=ADMIN)
    assert missing.status_code == 404


async def test_the_usage_report_in_json_and_csv(console: Console) -> None:
    running = console.accounts
    first = await running.new_account("r1@report.example")
    second = await running.new_account("r2@report.example", plan="pro")
    for account in (first, second):
        await console.credit(account, "20.00")
    now = datetime.now(UTC)
    events = [
        usage_event(first, started_at=now - timedelta(minutes=5)),
        usage_event(first, started_at=now - timedelta(minutes=4), model="claude-haiku-4-5"),
        usage_event(second, plan="pro", started_at=now - timedelta(minutes=3)),
    ]
    await asyncio.gather(*(console.bus.publish_event(e) for e in events))
    await console.settled(len(events))
    today = now.date().isoformat()

    async def report(**params: str) -> Any:
        answer = await running.admin.get(
            "/admin/v1/reports/usage", params={"from": today, "to": today, **params}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        return answer

    by_day = (await report(group_by="day")).json()
    assert [r["key"] for r in by_day["data"]] == [today]
    row = by_day["data"][0]
    assert (row["requests"], row["active_accounts"], row["new_accounts"]) == (3, 2, 2)
    revenue, upstream = parse_usd(row["revenue_usd"]), parse_usd(row["upstream_cost_usd"])
    assert parse_usd(row["margin_usd"]) == revenue - upstream
    assert row["tokens"] == sum(e.usage.input_tokens + e.usage.output_tokens for e in events)
    by_account = (await report(group_by="account")).json()
    assert {r["key"]: r["email"] for r in by_account["data"]} == {
        first: "r1@report.example", second: "r2@report.example",
    }  # fmt: skip
    assert by_account["totals"]["revenue_usd"] == row["revenue_usd"]

    as_csv = await report(group_by="model", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["model"] for r in table] == ["claude-haiku-4-5", "claude-sonnet-4-6", "total"]
    assert table[-1]["revenue_usd"] == format_usd(revenue)
    assert table[-1]["upstream_cost_usd"] == format_usd(upstream)
    for bad in ({"group_by": "year"}, {"format": "xml"}, {"from": "yesterday"}):
        refused = await running.admin.get("/admin/v1/reports/usage", params=bad, headers=ADMIN)
        assert refused.status_code == 400, bad


async def test_a_search_goes_on_without_a_peer_and_says_what_it_could_not_search(
    running: Running,
) -> None:
    """Neither billing nor payments runs: the account's own identifiers are still found."""
    account = await running.new_account("alone@example.com")
    found = await running.admin.get(
        "/admin/v1/accounts", params={"q": "0x" + "ab" * 32}, headers=ADMIN
    )
    assert found.json() == {"data": [], "next_cursor": None, "unsearched": ["payments"]}
    by_email = await running.admin.get("/admin/v1/accounts", params={"q": "alone@"}, headers=ADMIN)
    body = by_email.json()
    assert [r["id"] for r in body["data"]] == [account]
    assert body["data"][0]["balance_usd"] is None and body["unsearched"] == ["billing"]
    live = await running.admin.get("/admin/v1/live", headers=ADMIN)
    assert live.status_code == 200 and live.json()["billing"] is None
