"""Settlement of whole batches and admission in one statement, checked against their specifications.

The batch path settles many events with a few multi-row statements; these tests drive it directly
on a real PostgreSQL with the awkward batches a redelivering consumer produces (many accounts
interleaved, one id twice, one id with two contents, a batch delivered again), and compare the
database's GCRA (``gcra_admit``) with the Python specification in ``ratelimit.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiapi_billing import ratelimit
from aiapi_billing.auditor import audit
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.settlement import Settler
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events import BalanceChanged, RequestPriced
from aiapi_shared.money import parse_usd

from tests.billing.conftest import scalar, usage_event

CAT = default_catalogue()
# sonnet, basic plan: 1000 input (0.0009) + 500 output (0.00225)
COST = parse_usd("0.0009") + parse_usd("0.00225")


async def test_sql_gcra_matches_the_python_specification(db: psycopg.AsyncConnection[Any]) -> None:
    rng = random.Random(5)
    now = 1_800_000_000_000_000
    cases = []
    for _ in range(3000):
        rpm, tpm = rng.choice([(200, 1_000_000), (500, 2_000_000), (1, 10), (7, 1)])
        cases.append(
            (
                now + rng.randint(-120_000_000, 120_000_000),
                now + rng.randint(-120_000_000, 120_000_000),
                rpm,
                tpm,
                rng.choice([0, 1, rng.randint(0, 3 * tpm)]),
            )
        )
    cur = await db.execute(
        "SELECT (gcra_admit(r, t, %s, rpm, tpm, tok)).* FROM unnest(%s::bigint[], %s::bigint[],"
        " %s::bigint[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS c(r, t, rpm, tpm, tok, n)"
        " ORDER BY n",
        (now, *([c[i] for c in cases] for i in range(5))),
    )
    rows = await cur.fetchall()
    outcomes = Counter()
    for (rpm_tat, tpm_tat, rpm, tpm, tokens), row in zip(cases, rows, strict=True):
        spec = ratelimit.decide(
            ratelimit.RateState(rpm_tat, tpm_tat), now, rpm=rpm, tpm=tpm, tokens=tokens
        )
        expected = (spec.allowed, spec.state.rpm_tat_us, spec.state.tpm_tat_us, spec.retry_after_s)
        assert tuple(row) == expected, (rpm_tat, tpm_tat, rpm, tpm, tokens)
        outcomes[spec.allowed] += 1
    assert outcomes[True] > 300 and outcomes[False] > 300  # both branches were exercised


async def _fund(db: psycopg.AsyncConnection[Any], account_id: str, amount: int) -> None:
    await db.execute(
        "INSERT INTO accounts (account_id, credits) VALUES (%s, %s)", (account_id, amount)
    )
    await db.execute(
        "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account, amount,"
        " balance_after, reference) VALUES (%s, 'adjustment', %s, 'sys:adjustments', %s, %s, %s,"
        " 'test')",
        (f"adjustment:{account_id}:t", account_id, f"cust:{account_id}", amount, amount),
    )


async def _hold(db: psycopg.AsyncConnection[Any], account_id: str, request_id: str) -> int:
    cur = await db.execute(
        "SELECT decision, hold_amount FROM admit_request(%s, %s, 'claude-sonnet-4-6', 'basic',"
        " now(), %s, 2000, 200, 1000000, 600)",
        (request_id, account_id, parse_usd("0.01")),
    )
    row = await cur.fetchone()
    assert row is not None and row[0] == "admit"
    return int(row[1])


async def test_a_batch_over_many_accounts_with_repeats_bills_each_request_once(
    db: psycopg.AsyncConnection[Any],
) -> None:
    accounts = [f"acc_b{i}" for i in range(5)]
    for account_id in accounts[:3]:  # the last two are new to billing: the batch creates them
        await _fund(db, account_id, parse_usd("1.00"))
    events = [usage_event(accounts[i % 5]) for i in range(40)]
    for event in events[:10]:
        if event.account_id in accounts[:3]:  # two holds of 0.01 USD on each funded account
            await _hold(db, event.account_id, event.request_id)
    twin = events[3]
    rival = usage_event(events[4].account_id, request_id=events[4].request_id, output_tokens=7)
    batch = [*events, twin, rival]
    settler = Settler(LiveCatalogue(CAT), low_threshold=parse_usd("0.975"))

    async with db.transaction():
        first = await settler.settle_batch(db, batch)
    async with db.transaction():
        again = await settler.settle_batch(db, batch)  # the consumer crashed before its acks

    assert first.outcomes == ["settled"] * 40 + ["duplicate", "conflict"]
    assert again.outcomes == ["duplicate"] * 41 + ["conflict"]
    assert first.accounts == set(accounts) and again.accounts == set()
    for account_id in accounts:
        debits = await scalar(db, "SELECT debits FROM accounts WHERE account_id = %s", account_id)
        assert debits == 8 * COST
    assert await scalar(db, "SELECT count(*) FROM holds WHERE state = 'open'") == 0
    assert await scalar(db, "SELECT sum(holds) FROM accounts") == 0
    assert await scalar(db, "SELECT count(*) FROM usage_conflicts") == 1
    # Each transfer carries the account's balance right after it, in batch order.
    cur = await db.execute(
        "SELECT balance_after FROM transfers WHERE account_id = 'acc_b0' AND kind = 'usage'"
        " ORDER BY id"
    )
    assert [r[0] for r in await cur.fetchall()] == [
        parse_usd("1.00") - n * COST for n in range(1, 9)
    ]
    subjects = Counter(
        r[0] for r in await (await db.execute("SELECT subject FROM outbox")).fetchall()
    )
    assert subjects[RequestPriced.subject] == 40
    assert subjects[BalanceChanged.subject] == 5  # one per account for the whole batch
    # The funded three went from 0.98 available (two holds) to 0.9748 settled: below 0.975 once.
    assert subjects["billing.v1.balance.low"] == 3
    assert await audit(db) == []


async def test_a_batch_costs_the_same_few_statements_whatever_its_size(
    db: psycopg.AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    run = db.execute

    async def counted(query: Any, params: Any = None, **kwargs: Any) -> Any:
        statements.append(" ".join(str(query).split()[:3]))
        return await run(query, params, **kwargs)

    live = LiveCatalogue(CAT)
    await live.fresh(db)  # the terms as the service holds them once started
    monkeypatch.setattr(db, "execute", counted)
    settler = Settler(live, low_threshold=0)
    counts = []
    for size, prefix in ((2, "acc_small"), (90, "acc_large")):
        accounts = [f"{prefix}{i}" for i in range(min(size, 7))]
        for account_id in accounts:
            await _fund(db, account_id, parse_usd("10.00"))
        batch = [usage_event(accounts[i % len(accounts)]) for i in range(size)]
        for event in batch[::2]:
            await _hold(db, event.account_id, event.request_id)
        statements.clear()
        async with db.transaction():
            result = await settler.settle_batch(db, batch)
        assert result.outcomes == ["settled"] * size
        counts.append(len(statements))
    # The prices, the account locks, the records, the holds, the transfers, the totals, the outbox.
    assert counts == [7, 7], statements
    assert await audit(db) == []


async def test_an_event_without_a_price_waits_while_the_rest_of_its_batch_settles(
    db: psycopg.AsyncConnection[Any],
) -> None:
    early = datetime(2001, 1, 1, tzinfo=UTC)  # before any price of the catalogue
    batch = [usage_event("acc_p1"), usage_event("acc_p1", started_at=early), usage_event("acc_p2")]
    async with db.transaction():
        result = await Settler(LiveCatalogue(CAT), low_threshold=0).settle_batch(db, batch)
    assert result.outcomes[0] == result.outcomes[2] == "settled"
    assert type(result.outcomes[1]).__name__ == "UnpricedModel"
    assert await scalar(db, "SELECT count(*) FROM usage_records") == 2
    assert await audit(db) == []


async def test_an_admission_arriving_after_its_usage_was_settled_takes_no_hold(
    db: psycopg.AsyncConnection[Any],
) -> None:
    await _fund(db, "acc_late", parse_usd("1.00"))
    event = usage_event("acc_late")
    async with db.transaction():
        await Settler(LiveCatalogue(CAT), low_threshold=0).settle_batch(db, [event])
    # The edge gave up waiting for this admission and went on; billing answers it only now.
    cur = await db.execute(
        "SELECT decision, hold_id, hold_amount FROM admit_request(%s, 'acc_late',"
        " 'claude-sonnet-4-6', 'basic', now(), %s, 2000, 200, 1000000, 600)",
        (event.request_id, parse_usd("0.01")),
    )
    assert await cur.fetchone() == ("admit", None, 0)
    assert await scalar(db, "SELECT count(*) FROM holds") == 0
    assert await scalar(db, "SELECT holds FROM accounts WHERE account_id = 'acc_late'") == 0
    assert await audit(db) == []
