"""Admission leases, billing's side: the pure arithmetic, then grant, top-up, close, settlement and
expiry through billing's real subjects, PostgreSQL and NATS, with the auditor after each."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from aiapi_billing import lease_rules, ratelimit
from aiapi_billing.auditor import audit
from aiapi_billing.lease_commands import LeaseCommands
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.service import SCHEMA, Service
from aiapi_billing.settlement import Settler
from aiapi_shared.admission import (
    LEASE_CLOSE_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
    LeaseCloseReply,
    LeaseCloseRequest,
    LeaseGrantReply,
    LeaseGrantRequest,
    LeaseTopUpReply,
    LeaseTopUpRequest,
)
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.db import open_pool
from aiapi_shared.events import UsageRecorded, new_event_id
from aiapi_shared.money import parse_usd
from psycopg_pool import AsyncConnectionPool

from tests.billing.conftest import (
    admission,
    admit,
    assert_books_balance,
    billing_settings,
    credit,
    eventually,
    scalar,
    usage_event,
)

CAT = default_catalogue()
W = ratelimit.WINDOW_US
NOW_US = 1_800_000_000_000_000
# sonnet, basic plan: 1000 input (0.0009) + 500 output (0.00225)
COST = parse_usd("0.0009") + parse_usd("0.00225")
USD = parse_usd("1.00")


# -- the pure arithmetic ------------------------------------------------------------------------


def _ask(**overrides: int) -> lease_rules.GrantAsk:
    values = {
        "amount": 100 * USD,
        "min_amount": USD // 100,
        "requests": 1000,
        "tokens": 10_000_000,
        "min_tokens": 1000,
        "available": 10 * USD,
        "rpm": 200,
        "tpm": 1_000_000,
        "rpm_tat_us": 0,
        "tpm_tat_us": 0,
        "now_us": NOW_US,
        **overrides,
    }
    return lease_rules.GrantAsk(**values)


def test_free_units_are_the_minute_burst_minus_what_the_tat_is_ahead() -> None:
    assert lease_rules.free_units(0, NOW_US, 200) == 200  # a TAT in the past: a full minute's burst
    assert lease_rules.free_units(NOW_US + W // 2, NOW_US, 200) == 100
    assert (
        lease_rules.free_units(NOW_US + W // 2 + 1, NOW_US, 200) == 99
    )  # a unit started is a unit
    assert lease_rules.free_units(NOW_US + W, NOW_US, 200) == 0
    assert lease_rules.free_units(NOW_US + 2 * W, NOW_US, 200) == 0  # never negative


def test_a_grant_takes_a_share_of_the_balance_and_half_of_each_free_burst() -> None:
    terms = lease_rules.grant_terms(_ask(), share_bps=5000)
    assert terms == lease_rules.Grant(
        amount=5 * USD,
        requests=100,
        tokens=500_000,
        rpm_tat_us=NOW_US + W // 2,
        tpm_tat_us=NOW_US + W // 2,
    )
    # What was asked for caps the grant when it is smaller than the shares.
    small = lease_rules.grant_terms(_ask(amount=USD, requests=3, tokens=2000), share_bps=5000)
    assert isinstance(small, lease_rules.Grant)
    assert (small.amount, small.requests, small.tokens) == (USD, 3, 2000)
    assert small.rpm_tat_us == NOW_US + 3 * W // 200


def test_a_grant_below_what_the_edge_can_use_is_declined() -> None:
    assert isinstance(
        lease_rules.grant_terms(_ask(available=USD // 100), share_bps=5000), lease_rules.Decline
    )
    assert isinstance(
        lease_rules.grant_terms(_ask(available=-USD), share_bps=5000), lease_rules.Decline
    )
    # The whole balance would do, but the share may not exceed half of it.
    assert isinstance(lease_rules.grant_terms(_ask(available=USD // 100, min_amount=USD // 100),
                                          share_bps=5000), lease_rules.Decline)  # fmt: skip
    assert isinstance(lease_rules.grant_terms(_ask(available=USD // 100, min_amount=USD // 100),
                                          share_bps=10_000), lease_rules.Grant)  # fmt: skip
    # One free request left: half of it is nothing.
    one_left = NOW_US + W - W // 200
    assert isinstance(
        lease_rules.grant_terms(_ask(rpm_tat_us=one_left), share_bps=5000), lease_rules.Decline
    )
    assert isinstance(
        lease_rules.grant_terms(_ask(tpm_tat_us=NOW_US + W - W // 1000), share_bps=5000),
        lease_rules.Decline,  # 1000 tokens free, 500 grantable, 1000 needed
    )


@pytest.mark.parametrize("rpm", [200, 500])
def test_after_a_grant_per_request_admission_admits_exactly_the_rest_of_the_burst(rpm: int) -> None:
    rng = random.Random(rpm)
    for _ in range(50):
        tat = NOW_US + rng.randint(-W, W)
        free = lease_rules.free_units(tat, NOW_US, rpm)
        terms = lease_rules.grant_terms(
            _ask(rpm=rpm, rpm_tat_us=tat, requests=rng.randint(1, 400)), share_bps=5000
        )
        if isinstance(terms, lease_rules.Decline):
            assert free < 2
            continue
        state = ratelimit.RateState(terms.rpm_tat_us, 0)
        admitted = 0
        while True:
            decision = ratelimit.decide(state, NOW_US, rpm=rpm, tpm=10**9, tokens=0)
            if not decision.allowed:
                break
            state, admitted = decision.state, admitted + 1
        assert admitted == free - terms.requests


def test_settling_releases_each_share_and_the_last_one_the_rest() -> None:
    tally = lease_rules.Tally("open", 100, 0, 0, None)
    tally, released = lease_rules.settle_event(tally, 30)
    assert (tally.open_amount, tally.settled_reserved, tally.settled_count, released) == (
        70,
        30,
        1,
        30,
    )
    closing = lease_rules.close_terms(
        tally,
        lease_rules.CloseReport(2, 50, 7000),
        requests=10,
        tokens=10_000,
        rpm=200,
        tpm=1_000_000,
    )
    # 20 reserved and not settled yet stays held; 50 nobody reserved goes back.
    assert closing.released == 50 and closing.tally.open_amount == 20
    assert closing.tally.state == "closed" and closing.tally.admitted == 2
    assert closing.rpm_rewind_us == 8 * W // 200 and closing.tpm_rewind_us == 3000 * W // 1_000_000
    last, released = lease_rules.settle_event(closing.tally, 20)
    assert (last.state, last.open_amount, released) == ("settled", 0, 20)


def test_closing_after_everything_settled_releases_all_and_more_than_was_held_never() -> None:
    tally = lease_rules.Tally("open", 10, 0, 0, None)
    tally, first = lease_rules.settle_event(tally, 25)  # a share larger than what is left (a bug)
    assert first == 10 and tally.open_amount == 0
    closing = lease_rules.close_terms(
        tally, lease_rules.CloseReport(1, 25, 0), requests=1, tokens=1, rpm=200, tpm=1_000_000
    )
    assert closing.tally.state == "settled" and closing.released == 0
    done = lease_rules.close_terms(
        lease_rules.Tally("open", 40, 60, 2, None),
        lease_rules.CloseReport(2, 60, 0),
        requests=5,
        tokens=5,
        rpm=200,
        tpm=1_000_000,
    )
    assert (done.tally.state, done.tally.open_amount, done.released) == ("settled", 0, 40)


def test_the_releases_of_a_lease_add_up_to_what_it_held() -> None:
    rng = random.Random(11)
    for _ in range(500):
        granted = rng.randint(1, 1000)
        shares, left = [], granted
        for _ in range(rng.randint(0, 6)):
            share = rng.randint(0, left)
            shares.append(share)
            left -= share
        rng.shuffle(shares)
        close_at = rng.randint(0, len(shares))
        tally, total = lease_rules.Tally("open", granted, 0, 0, None), 0
        for i in range(len(shares) + 1):
            if i == close_at:
                report = lease_rules.CloseReport(len(shares), sum(shares), 0)
                closing = lease_rules.close_terms(tally, report, requests=9, tokens=9, rpm=1, tpm=1)
                tally, total = closing.tally, total + closing.released
                # What is still held covers every share not settled yet, and no more.
                assert tally.open_amount == sum(shares[i:])
            if i < len(shares):
                tally, released = lease_rules.settle_event(tally, shares[i])
                assert released == shares[i] or tally.state == "settled"
                total += released
        assert tally.state == "settled" and tally.open_amount == 0 and total == granted


def _close_then_grant(
    ask: lease_rules.GrantAsk, unused: lease_rules.Unused
) -> lease_rules.Grant | lease_rules.Decline:
    """What closing a lease with ``unused`` left and granting a new one would give."""
    return lease_rules.grant_terms(
        replace(
            ask,
            available=max(0, ask.available) + unused.amount,
            rpm_tat_us=ask.rpm_tat_us - lease_rules.rewind_us(unused.requests, ask.rpm),
            tpm_tat_us=ask.tpm_tat_us - lease_rules.rewind_us(unused.tokens, ask.tpm),
        ),
        share_bps=5000,
    )


def test_a_renewal_in_place_leaves_what_close_then_grant_would() -> None:
    granted = lease_rules.grant_terms(_ask(requests=100), share_bps=5000)
    assert isinstance(granted, lease_rules.Grant)
    # 30 of its 100 requests and 1 of its 5 dollars used: 70 and 4 left.
    unused = lease_rules.Unused(amount=4 * USD, requests=70, tokens=400_000)
    later = _ask(
        available=5 * USD,
        rpm_tat_us=granted.rpm_tat_us,
        tpm_tat_us=granted.tpm_tat_us,
        now_us=NOW_US + 5_000_000,
    )
    renewal = lease_rules.renew_terms(later, unused, share_bps=5000)
    fresh = _close_then_grant(later, unused)
    assert isinstance(renewal, lease_rules.Grant) and isinstance(fresh, lease_rules.Grant)
    # It adds what makes the unused part the new grant, and the TATs end where they would.
    assert unused.amount + renewal.amount == fresh.amount == parse_usd("4.5")
    assert unused.requests + renewal.requests == fresh.requests
    assert unused.tokens + renewal.tokens == fresh.tokens
    assert (renewal.rpm_tat_us, renewal.tpm_tat_us) == (fresh.rpm_tat_us, fresh.tpm_tat_us)


def test_a_renewal_never_takes_back_and_never_charges_less_than_close_then_grant() -> None:
    rng = random.Random(20)
    for _ in range(2000):
        rpm, tpm = rng.choice([10, 200, 5000]), rng.choice([10_000, 1_000_000])
        ask = _ask(
            amount=rng.randint(1, 10) * USD,
            min_amount=rng.randint(1, USD),
            requests=rng.randint(1, 300),
            tokens=rng.randint(1, 10**6),
            min_tokens=rng.randint(1, 5000),
            available=rng.randint(-USD, 10 * USD),
            rpm=rpm,
            tpm=tpm,
            rpm_tat_us=NOW_US + rng.randint(-2 * W, W),
            tpm_tat_us=NOW_US + rng.randint(-2 * W, W),
        )
        unused = lease_rules.Unused(
            rng.randint(0, 5 * USD), rng.randint(0, rpm // 2), rng.randint(0, tpm // 2)
        )
        renewal = lease_rules.renew_terms(ask, unused, share_bps=5000)
        fresh = _close_then_grant(ask, unused)
        if isinstance(renewal, lease_rules.Decline):
            # Declined only when the lease could not be used even as it stands.
            assert isinstance(fresh, lease_rules.Decline)
            continue
        assert min(renewal.amount, renewal.requests, renewal.tokens) >= 0
        if isinstance(fresh, lease_rules.Decline):
            continue
        assert unused.amount + renewal.amount == max(unused.amount, fresh.amount)
        assert unused.requests + renewal.requests == max(unused.requests, fresh.requests)
        assert unused.tokens + renewal.tokens == max(unused.tokens, fresh.tokens)
        # The rate limits: what it keeps beyond a fresh grant is charged too, never less.
        assert renewal.rpm_tat_us >= fresh.rpm_tat_us
        assert renewal.tpm_tat_us >= fresh.tpm_tat_us
        if unused.requests <= fresh.requests:
            assert renewal.rpm_tat_us == fresh.rpm_tat_us


def test_the_unused_part_of_a_lease_is_what_its_close_would_release() -> None:
    tally = lease_rules.Tally("open", 900, 300, 2, None)  # 1000 granted, 100 + 200 settled
    report = lease_rules.CloseReport(admitted=5, reserved_amount=700, reserved_tokens=50)
    unused = lease_rules.unused_at(tally, report, requests=8, tokens=80)
    assert unused == lease_rules.Unused(amount=500, requests=3, tokens=30)
    closing = lease_rules.close_terms(tally, report, requests=8, tokens=80, rpm=60, tpm=60)
    assert closing.released == unused.amount


# -- through billing's subjects -----------------------------------------------------------------


async def _request(bus: Bus, subject: str, body: Any, reply: type[Any]) -> Any:
    data = await bus.request(subject, body.model_dump_json().encode(), timeout_s=10.0)
    return reply.model_validate_json(data)


def _grant_request(account_id: str, **overrides: Any) -> LeaseGrantRequest:
    values: dict[str, Any] = {
        "lease_id": f"lease_{new_event_id()}",
        "account_id": account_id,
        "plan": "basic",
        "edge_id": "edge-test",
        "amount": parse_usd("0.10"),
        "min_amount": parse_usd("0.01"),
        "requests": 20,
        "tokens": 100_000,
        "min_tokens": 1000,
        **overrides,
    }
    return LeaseGrantRequest(**values)


async def grant(bus: Bus, req: LeaseGrantRequest) -> LeaseGrantReply:
    reply: LeaseGrantReply = await _request(bus, LEASE_GRANT_SUBJECT, req, LeaseGrantReply)
    return reply


async def top_up(bus: Bus, lease_id: str, account_id: str, amount: int) -> LeaseTopUpReply:
    req = LeaseTopUpRequest(lease_id=lease_id, account_id=account_id, amount=amount)
    reply: LeaseTopUpReply = await _request(bus, LEASE_TOP_UP_SUBJECT, req, LeaseTopUpReply)
    return reply


async def close(
    bus: Bus, lease_id: str, account_id: str, admitted: int, reserved: int, tokens: int = 0
) -> LeaseCloseReply:
    req = LeaseCloseRequest(
        lease_id=lease_id,
        account_id=account_id,
        admitted_requests=admitted,
        reserved_amount=reserved,
        reserved_tokens=tokens,
    )
    reply: LeaseCloseReply = await _request(bus, LEASE_CLOSE_SUBJECT, req, LeaseCloseReply)
    return reply


def lease_event(account_id: str, lease_id: str, reserved: int, tokens: int = 2000) -> UsageRecorded:
    """A sonnet request of 1000 input and 500 output tokens admitted under the lease."""
    return usage_event(account_id).model_copy(
        update={
            "admission": "lease",
            "lease_id": lease_id,
            "lease_reserved": reserved,
            "lease_tokens": tokens,
        }
    )


async def _holds(db: psycopg.AsyncConnection[Any], account_id: str) -> int:
    return int(await scalar(db, "SELECT holds FROM accounts WHERE account_id = %s", account_id))


async def _lease(db: psycopg.AsyncConnection[Any], lease_id: str) -> tuple[Any, ...]:
    cur = await db.execute(
        "SELECT state, granted, open_amount, settled_count, settled_reserved, reserved"
        " FROM leases WHERE lease_id = %s",
        (lease_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return tuple(row)


async def _settled(db: psycopg.AsyncConnection[Any], count: int) -> None:
    async def done() -> bool:
        return int(await scalar(db, "SELECT count(*) FROM usage_records")) >= count

    await eventually(done)


async def test_a_grant_holds_its_share_and_a_retry_gets_the_same_grant(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_l1", "10.00")
    req = _grant_request("acc_l1", amount=100 * USD, requests=1000, tokens=10_000_000)
    first = await grant(bus, req)
    # Half of the available balance, half of the basic plan's 200 requests and 1M tokens a minute.
    assert first.decision == "granted"
    assert (first.amount, first.requests, first.tokens) == (5 * USD, 100, 500_000)
    assert first.admit_for_s == 60.0  # AIAPI_LEASE_ADMIT_FOR_S by default
    assert await _holds(db, "acc_l1") == 5 * USD
    again = await grant(bus, req)
    assert again.decision == "granted"
    assert (again.amount, again.requests, again.tokens) == (5 * USD, 100, 500_000)
    assert 0 <= again.admit_for_s <= 60.0
    assert await _holds(db, "acc_l1") == 5 * USD
    assert await scalar(db, "SELECT count(*) FROM leases") == 1
    stolen = await grant(bus, req.model_copy(update={"account_id": "acc_other"}))
    assert stolen.decision == "account_inactive" and stolen.amount == 0
    assert await _holds(db, "acc_other") == 0
    # Closed unused: the money and both rate slices come back, so the next grant is as large.
    closed = await close(bus, req.lease_id, "acc_l1", 0, 0)
    assert closed.closed and closed.released == 5 * USD
    assert await _holds(db, "acc_l1") == 0
    nxt = await grant(bus, _grant_request("acc_l1", amount=100 * USD, requests=1000, tokens=10**7))
    assert (nxt.amount, nxt.requests, nxt.tokens) == (5 * USD, 100, 500_000)


async def test_a_small_balance_is_declined_and_the_share_caps_a_grant(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    nothing = await grant(bus, _grant_request("acc_l2"))
    assert nothing.decision == "declined" and nothing.amount == 0
    await credit(bus, "acc_l2", "0.015")
    # 0.0075 is half the balance: less than the 0.01 the edge said it could use.
    assert (await grant(bus, _grant_request("acc_l2"))).decision == "declined"
    assert await scalar(db, "SELECT count(*) FROM leases") == 0
    assert await _holds(db, "acc_l2") == 0
    capped = await grant(bus, _grant_request("acc_l2", min_amount=parse_usd("0.005")))
    assert capped.decision == "granted" and capped.amount == parse_usd("0.0075")
    # The next one gets half of what is left.
    second = await grant(bus, _grant_request("acc_l2", min_amount=parse_usd("0.001")))
    assert second.amount == parse_usd("0.00375")
    assert await _holds(db, "acc_l2") == parse_usd("0.01125")


async def test_two_grants_partition_the_requests_per_minute_with_admission(
    billing: Service, bus: Bus
) -> None:
    await credit(bus, "acc_l3", "100.00")
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await grant(bus, _grant_request("acc_l3", requests=1000))
    second = await grant(bus, _grant_request("acc_l3", requests=1000))
    assert first.requests == 100  # half of the basic plan's burst of 200
    assert 50 <= second.requests < 100  # half of what is left (plus any refill since)
    replies = await asyncio.gather(
        *(admit(bus, admission("acc_l3", max_tokens=1)) for _ in range(120))
    )
    # Without the leases all 120 would fit the burst; with them only what they left does.
    refilled = int((loop.time() - started) / 0.3) + 1
    admitted = [r.decision for r in replies].count("admit")
    assert admitted + first.requests + second.requests <= 200 + refilled
    limited = [r for r in replies if r.decision == "rate_limited"]
    assert limited and len(limited) + admitted == 120
    assert all(1 <= (r.retry_after_s or 0) <= 60 for r in limited)


async def test_usage_under_a_lease_debits_its_cost_and_releases_its_share(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_l4", "1.00")
    req = _grant_request("acc_l4")
    granted = await grant(bus, req)
    assert granted.amount == parse_usd("0.10")
    shares = [parse_usd("0.01"), parse_usd("0.02"), parse_usd("0.005")]
    tpm_before = await scalar(db, "SELECT tpm_tat_us FROM accounts WHERE account_id = 'acc_l4'")
    events = [lease_event("acc_l4", req.lease_id, share, tokens=4000) for share in shares]
    for event in events:
        await bus.publish_event(event)
    await _settled(db, 3)
    # Tokens/min counted 4000 per request under the lease; the real 1500 replace them.
    tpm_after = await scalar(db, "SELECT tpm_tat_us FROM accounts WHERE account_id = 'acc_l4'")
    assert tpm_after - tpm_before == 3 * ratelimit.token_correction_us(1500, 4000, 1_000_000) < 0
    debits = await scalar(db, "SELECT debits FROM accounts WHERE account_id = 'acc_l4'")
    assert debits == 3 * COST
    held = parse_usd("0.10") - sum(shares)
    assert await _lease(db, req.lease_id) == ("open", parse_usd("0.10"), held, 3, sum(shares), None)
    assert await _holds(db, "acc_l4") == held
    # Closed after its requests settled: everything left goes back at once.
    closed = await close(bus, req.lease_id, "acc_l4", 3, sum(shares))
    assert closed.closed and closed.released == held
    assert (await _lease(db, req.lease_id))[:3] == ("settled", parse_usd("0.10"), 0)
    assert await _holds(db, "acc_l4") == 0
    again = await close(bus, req.lease_id, "acc_l4", 3, sum(shares))
    assert again.closed and again.released == 0
    assert not (await close(bus, "lease_unknown", "acc_l4", 0, 0)).closed
    balance = await scalar(db, "SELECT credits - debits FROM accounts WHERE account_id = 'acc_l4'")
    assert balance == USD - 3 * COST


async def test_closed_before_its_events_settle_and_a_duplicate_releases_nothing(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_l5", "1.00")
    req = _grant_request("acc_l5")
    await grant(bus, req)
    shares = [parse_usd("0.03"), parse_usd("0.04")]
    closed = await close(bus, req.lease_id, "acc_l5", 2, sum(shares), tokens=4000)
    # What nobody reserved goes back; the two unsettled shares stay held.
    assert closed.released == parse_usd("0.03")
    assert await _holds(db, "acc_l5") == sum(shares)
    events = [lease_event("acc_l5", req.lease_id, share) for share in shares]
    await bus.publish_event(events[0])
    await _settled(db, 1)
    assert await _holds(db, "acc_l5") == shares[1]
    assert (await _lease(db, req.lease_id))[0] == "closed"
    # The first event again, beyond NATS's duplicate window: billed and released once only.
    await bus.publish(events[0].subject, events[0].to_json(), "a-different-msg-id")
    await eventually(
        lambda: billing.consumers is not None and billing.consumers.counters.duplicates == 1
    )
    assert await _holds(db, "acc_l5") == shares[1]
    await bus.publish_event(events[1])
    await _settled(db, 2)
    assert await _lease(db, req.lease_id) == (
        "settled", parse_usd("0.10"), 0, 2, sum(shares), sum(shares)
    )  # fmt: skip
    assert await _holds(db, "acc_l5") == 0
    debits = await scalar(db, "SELECT debits FROM accounts WHERE account_id = 'acc_l5'")
    assert debits == 2 * COST


async def test_top_up_before_and_after_close(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_l6", "1.00")
    before, after = _grant_request("acc_l6"), _grant_request("acc_l6")
    await grant(bus, before)
    await grant(bus, after)  # half of what is left: 0.10 is less, so 0.10 again
    assert await _holds(db, "acc_l6") == parse_usd("0.20")
    # An open lease grows for a long stream admitted under it.
    assert (await top_up(bus, before.lease_id, "acc_l6", parse_usd("0.05"))).granted
    assert await _holds(db, "acc_l6") == parse_usd("0.25")
    assert (await _lease(db, before.lease_id))[1:3] == (parse_usd("0.15"), parse_usd("0.15"))
    # The stream reserved 0.02 + the 0.05 top-up; nothing else was admitted.
    await close(bus, before.lease_id, "acc_l6", 1, parse_usd("0.07"))
    assert await _holds(db, "acc_l6") == parse_usd("0.17")
    # The other lease is closed while its one stream still runs; the stream then grows.
    closed = await close(bus, after.lease_id, "acc_l6", 1, parse_usd("0.01"))
    assert closed.released == parse_usd("0.09")
    assert (await top_up(bus, after.lease_id, "acc_l6", parse_usd("0.02"))).granted
    assert await _lease(db, after.lease_id) == (
        "closed", parse_usd("0.12"), parse_usd("0.03"), 0, 0, parse_usd("0.03")
    )  # fmt: skip
    assert await _holds(db, "acc_l6") == parse_usd("0.10")
    # More than is available, or a lease of another account: refused, nothing moves.
    assert not (await top_up(bus, after.lease_id, "acc_l6", parse_usd("5.00"))).granted
    assert not (await top_up(bus, after.lease_id, "acc_other", parse_usd("0.01"))).granted
    await bus.publish_event(lease_event("acc_l6", before.lease_id, parse_usd("0.07")))
    await bus.publish_event(lease_event("acc_l6", after.lease_id, parse_usd("0.03")))
    await _settled(db, 2)
    assert await _holds(db, "acc_l6") == 0
    assert (await _lease(db, before.lease_id))[0] == (await _lease(db, after.lease_id))[0]
    assert (await _lease(db, after.lease_id))[0] == "settled"
    # A settled lease takes no more money.
    assert not (await top_up(bus, after.lease_id, "acc_l6", parse_usd("0.01"))).granted
    assert await _holds(db, "acc_l6") == 0


async def test_a_lease_renewed_in_place_grows_moves_its_window_and_closes_exactly(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_lr", "1.00")
    req = _grant_request("acc_lr", amount=parse_usd("0.10"), requests=20)
    assert (await grant(bus, req)).amount == parse_usd("0.10")
    shares = [parse_usd("0.03"), parse_usd("0.04"), parse_usd("0.02")]
    await bus.publish_event(lease_event("acc_lr", req.lease_id, shares[0], tokens=4000))
    await _settled(db, 1)
    window = await scalar(db, "SELECT admit_until FROM leases WHERE lease_id = %s", req.lease_id)
    # Two admitted so far (one settled): 0.03 of the 0.10 unused, asked to become 0.10 again.
    renewal = req.model_copy(
        update={"renew": True, "admitted_requests": 2, "reserved_amount": sum(shares[:2]),
                "reserved_tokens": 8000, "requests": 20}
    )  # fmt: skip
    renewed = await grant(bus, renewal)
    assert renewed.decision == "granted" and renewed.admit_for_s == 60.0
    assert (renewed.amount, renewed.requests) == (parse_usd("0.07"), 2)
    assert await scalar(db, "SELECT count(*) FROM leases") == 1  # in place: no second lease
    assert await _lease(db, req.lease_id) == (
        "open", parse_usd("0.17"), parse_usd("0.14"), 1, shares[0], None
    )  # fmt: skip
    assert await scalar(db, "SELECT requests FROM leases WHERE lease_id = %s", req.lease_id) == 22
    moved = await scalar(db, "SELECT admit_until FROM leases WHERE lease_id = %s", req.lease_id)
    assert moved > window
    assert await _holds(db, "acc_lr") == parse_usd("0.14")
    assert await audit(db) == []
    # A third request under the renewed lease, then the close reports all three.
    closed = await close(bus, req.lease_id, "acc_lr", 3, sum(shares), tokens=12_000)
    assert closed.released == parse_usd("0.14") - sum(shares[1:])
    for share in shares[1:]:
        await bus.publish_event(lease_event("acc_lr", req.lease_id, share, tokens=4000))
    await _settled(db, 3)
    assert (await _lease(db, req.lease_id))[:3] == ("settled", parse_usd("0.17"), 0)
    assert await _holds(db, "acc_lr") == 0
    assert await audit(db) == []
    # A closed lease is not renewed; nor is another account's.
    assert (await grant(bus, renewal)).decision == "declined"
    other = await grant(bus, renewal.model_copy(update={"account_id": "acc_other"}))
    assert other.decision == "declined"
    assert (await _lease(db, req.lease_id))[:3] == ("settled", parse_usd("0.17"), 0)
    balance = await scalar(db, "SELECT credits - debits FROM accounts WHERE account_id = 'acc_lr'")
    assert balance == USD - 3 * COST


async def test_an_unclosed_lease_expires_and_its_late_event_bills_in_full(
    migrated: str, nats_url: str, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    service = Service(billing_settings(migrated, nats_url, hold_ttl_s=5))
    await service.start()
    try:
        await credit(bus, "acc_l7", "1.00")
        req = _grant_request("acc_l7")
        assert (await grant(bus, req)).decision == "granted"
        await db.execute("UPDATE leases SET expires_at = now() - interval '1 second'")

        async def expired() -> bool:
            return str((await _lease(db, req.lease_id))[0]) == "expired"

        await eventually(expired)
        assert (await _lease(db, req.lease_id))[2] == 0
        assert await _holds(db, "acc_l7") == 0
        # The edge died after admitting a request; its usage arrives late and bills in full.
        await bus.publish_event(lease_event("acc_l7", req.lease_id, parse_usd("0.05")))
        await _settled(db, 1)
        assert await _holds(db, "acc_l7") == 0
        debits = await scalar(db, "SELECT debits FROM accounts WHERE account_id = 'acc_l7'")
        assert debits == COST
        assert (await _lease(db, req.lease_id))[3] == 0  # an expired lease counts nothing more
        closed = await close(bus, req.lease_id, "acc_l7", 1, parse_usd("0.05"))
        assert closed.closed and closed.released == 0
    finally:
        await service.stop()
    await assert_books_balance(migrated)


# -- interleavings, on the handlers directly ----------------------------------------------------


@pytest.fixture
async def pool(migrated: str) -> AsyncIterator[AsyncConnectionPool]:
    opened = open_pool(migrated, schema=SCHEMA, min_size=1, max_size=4)
    await opened.open(wait=True)
    try:
        yield opened
    finally:
        await opened.close()


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


def _lease_events(
    rng: random.Random, account_id: str, lease_id: str, amount: int, count: int
) -> list[UsageRecorded]:
    """The requests an edge admitted under a lease: each reserved a share of what was left."""
    left, events = amount, []
    for _ in range(count):
        share = rng.randint(0, left)
        left -= share
        used = usage_event(
            account_id, input_tokens=rng.randint(0, 5000), output_tokens=rng.randint(1, 900)
        )
        events.append(
            used.model_copy(
                update={"lease_id": lease_id, "lease_reserved": share,
                        "lease_tokens": rng.randint(0, 6000), "admission": "lease"}
            )
        )  # fmt: skip
    return events


async def _settle(pool: AsyncConnectionPool, settler: Settler, batch: list[UsageRecorded]) -> None:
    """Settle what was delivered so far in one transaction, as the consumer does."""
    if batch:
        async with pool.connection() as conn, conn.transaction():
            await settler.settle_batch(conn, batch)
        batch.clear()


async def test_random_interleavings_of_settle_close_and_top_up_release_every_lease(
    pool: AsyncConnectionPool, db: psycopg.AsyncConnection[Any]
) -> None:
    leases = LeaseCommands(
        pool, LiveCatalogue(CAT), hold_ttl_s=600, admit_for_s=10.0, share_bps=5000
    )
    settler = Settler(LiveCatalogue(CAT), low_threshold=0)
    rng = random.Random(20261127)
    for scenario in range(25):
        account_id = f"acc_r{scenario}"
        credits = rng.randint(1, 5) * USD // 10
        await _fund(db, account_id, credits)
        admitted: dict[str, list[UsageRecorded]] = {}
        for _ in range(2):  # two leases of one account, settled in the same batches
            req = _grant_request(account_id, amount=credits, min_amount=1)
            reply = await leases.grant(req)
            assert reply.decision == "granted"
            count = rng.randint(0, 6)
            admitted[req.lease_id] = _lease_events(
                rng, account_id, req.lease_id, reply.amount, count
            )
        events = [e for es in admitted.values() for e in es]
        # In a random order: each event (a third of them delivered twice), each lease's close,
        # and top-ups of requests still running (their events then carry the larger share).
        steps: list[tuple[str, Any]] = [("event", e.request_id) for e in events]
        steps += [("event", e.request_id) for e in rng.sample(events, k=len(events) // 3)]
        steps += [("close", lease_id) for lease_id in admitted]
        steps += [("top_up", e.request_id) for e in rng.sample(events, k=min(3, len(events)))]
        rng.shuffle(steps)
        final = {e.request_id: e for e in events}
        delivered: set[str] = set()
        batch: list[UsageRecorded] = []

        for kind, key in steps:
            if kind == "event":
                delivered.add(key)
                batch.append(final[key])
                if rng.random() < 0.5:  # else it shares a batch with what comes next
                    await _settle(pool, settler, batch)
                continue
            await _settle(pool, settler, batch)
            if kind == "close":
                ours = [final[e.request_id] for e in admitted[key]]
                closing = await leases.close(
                    LeaseCloseRequest(
                        lease_id=key,
                        account_id=account_id,
                        admitted_requests=len(ours),
                        reserved_amount=sum(e.lease_reserved for e in ours),
                        reserved_tokens=sum(e.lease_tokens for e in ours),
                    )
                )
                assert closing.closed
            elif key not in delivered:  # a top-up only while the request still runs
                event, amount = final[key], rng.randint(1, USD // 100)
                up = await leases.top_up(
                    LeaseTopUpRequest(
                        lease_id=str(event.lease_id), account_id=account_id, amount=amount
                    )
                )
                if up.granted:
                    final[key] = event.model_copy(
                        update={"lease_reserved": event.lease_reserved + amount}
                    )
            assert await audit(db) == [], (scenario, kind)
        await _settle(pool, settler, batch)
        assert await audit(db) == [], scenario
        assert await _holds(db, account_id) == 0, scenario
        costs = await scalar(
            db, "SELECT sum(cost) FROM usage_records WHERE account_id = %s", account_id
        )
        balance = await scalar(
            db, "SELECT credits - debits FROM accounts WHERE account_id = %s", account_id
        )
        assert balance == credits - (costs or 0)
        states = await db.execute(
            "SELECT state, count(*) FROM leases WHERE account_id = %s GROUP BY state",
            (account_id,),
        )
        assert dict(await states.fetchall()) == {"settled": 2}, scenario
