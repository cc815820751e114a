"""Admission leases, the edge's side: local admission within what billing granted, the sums the
close reports, the per-request path whenever a lease cannot cover a request, and top-ups that
never race a close. Billing is an in-test responder here (tests/e2e runs the real one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiapi_billing.pricing import Price, hold_nano
from aiapi_cli.embedded import EmbeddedNats
from aiapi_edge import lease_client
from aiapi_edge.budget import worst_case
from aiapi_edge.lease_client import Leases
from aiapi_edge.lease_math import IDLE_CLOSE_S, Demand, Lease, next_ask
from aiapi_edge.metrics import Metrics
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
from aiapi_shared.catalogue import PricePoint, default_catalogue
from aiapi_shared.events.records_v1 import CATALOGUE_BUCKET, CATALOGUE_KEY, CatalogueSnapshot
from aiapi_shared.events.usage_v1 import UsageRecorded
from hypothesis import given
from hypothesis import strategies as st

from .conftest import EdgeEnv
from .support import key_record, put_key, usage_events, wait_for

BODY: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hello [[reply: ok]]"}],
}


@dataclass
class LeaseBilling:
    """An in-test stand-in for billing's lease subjects, recording what the edge asked."""

    decision: str = "granted"
    renew_decision: str = "granted"  # for renewals in place (``renew``)
    amount: int | None = None  # None: what was asked
    requests: int | None = None
    tokens: int | None = None
    admit_for_s: float = 30.0
    top_up_delay_s: float = 0.0
    grant_delay_s: float = 0.0
    grant_top_ups: bool = True
    grants: list[LeaseGrantRequest] = field(default_factory=list)
    closes: list[LeaseCloseRequest] = field(default_factory=list)
    top_ups: list[LeaseTopUpRequest] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    async def grant(self, data: bytes) -> bytes:
        request = LeaseGrantRequest.model_validate_json(data)
        await asyncio.sleep(self.grant_delay_s)
        self.grants.append(request)
        decision = self.renew_decision if request.renew else self.decision
        if decision != "granted":
            return LeaseGrantReply(decision="declined").model_dump_json().encode()  # type: ignore[arg-type]
        reply = LeaseGrantReply(
            decision="granted",
            amount=request.amount if self.amount is None else self.amount,
            requests=request.requests if self.requests is None else self.requests,
            tokens=request.tokens if self.tokens is None else self.tokens,
            admit_for_s=self.admit_for_s,
        )
        return reply.model_dump_json().encode()

    async def top_up(self, data: bytes) -> bytes:
        request = LeaseTopUpRequest.model_validate_json(data)
        await asyncio.sleep(self.top_up_delay_s)
        self.top_ups.append(request)
        self.order.append("top_up")
        reply = LeaseTopUpReply(granted=self.grant_top_ups, amount=request.amount)
        return reply.model_dump_json().encode()

    async def close(self, data: bytes) -> bytes:
        request = LeaseCloseRequest.model_validate_json(data)
        self.closes.append(request)
        self.order.append("close")
        return LeaseCloseReply(closed=True).model_dump_json().encode()


@pytest.fixture
async def leasing(bus: Bus) -> LeaseBilling:
    responder = LeaseBilling()
    await bus.serve(LEASE_GRANT_SUBJECT, responder.grant, queue="billing")
    await bus.serve(LEASE_TOP_UP_SUBJECT, responder.top_up, queue="billing")
    await bus.serve(LEASE_CLOSE_SUBJECT, responder.close, queue="billing")
    return responder


async def send(env: EdgeEnv, count: int) -> None:
    sdk = env.anthropic()
    for _ in range(count):
        message = await sdk.messages.create(**BODY)
        assert message.content[0].type == "text"


async def first_lease(env: EdgeEnv, leasing: LeaseBilling) -> None:
    """One request makes the edge ask for a lease (and waits for it): until it is granted."""
    await send(env, 1)

    async def granted() -> bool:
        return len(leasing.grants) >= 1

    await wait_for(granted)


def assert_close_matches_events(close: LeaseCloseRequest, events: list[UsageRecorded]) -> None:
    """What a close reports is exactly the sum of its requests' usage events."""
    mine = [e for e in events if e.lease_id == close.lease_id]
    assert close.admitted_requests == len(mine)
    assert close.reserved_amount == sum(e.lease_reserved for e in mine)
    assert close.reserved_tokens == sum(e.lease_tokens for e in mine)


# -- pure ---------------------------------------------------------------------------------------


def make_lease(**overrides: Any) -> Lease:
    values: dict[str, Any] = {
        "lease_id": "lease_1",
        "account_id": "acct_1",
        "plan": "basic",
        "amount": 1_000,
        "requests": 4,
        "tokens": 400,
        "asked_at": 100.0,
        "admit_for_s": 10.5,
    }
    values.update(overrides)
    return Lease.granted_at(**values)


def test_a_lease_admits_while_every_slice_covers_the_request() -> None:
    lease = make_lease()
    demand = Demand(cost=300, tokens=100)
    for _ in range(3):
        assert lease.fits(demand)
        lease.admit(demand)
    assert not lease.fits(demand)  # 900 + 300 > 1,000
    assert lease.fits(Demand(cost=100, tokens=100))
    lease.admit(Demand(cost=100, tokens=100))
    assert not lease.fits(Demand(cost=0, tokens=0))  # four requests admitted
    assert (lease.admitted, lease.reserved, lease.reserved_tokens) == (4, 1_000, 400)


def test_a_lease_is_usable_only_in_its_window_for_its_plan() -> None:
    lease = make_lease()
    assert lease.deadline == pytest.approx(110.0)  # the window less the margin
    assert lease.usable("basic", 109.9)
    assert not lease.usable("basic", 110.0)
    assert not lease.usable("pro", 105.0)
    lease.closing = True
    assert not lease.usable("basic", 105.0)


def test_a_lease_is_usable_only_under_the_terms_it_was_asked_for() -> None:
    lease = make_lease(terms=(200, 1_000_000, 7000))
    assert lease.usable("basic", 105.0, (200, 1_000_000, 7000))
    assert not lease.usable("basic", 105.0, (3, 1_000_000, 7000))  # the operator's new limit
    assert not lease.usable("basic", 105.0, (200, 1_000_000, 9000))  # the account's discount


def test_a_lease_runs_low_on_any_slice_or_late_in_its_window() -> None:
    assert not make_lease().running_low(101.0)
    assert not make_lease().running_low(107.5)  # a quarter of the window left is enough
    assert make_lease().running_low(108.5)  # less than a fifth of the window left
    lease = make_lease()
    lease.admit(Demand(cost=10, tokens=10))
    lease.admit(Demand(cost=10, tokens=10))
    assert not lease.running_low(101.0)  # half the requests left is not less than half
    lease.admit(Demand(cost=10, tokens=10))
    assert lease.running_low(101.0)
    spender = make_lease()
    spender.admit(Demand(cost=501, tokens=1))
    assert spender.running_low(101.0)


def test_a_renewed_lease_grows_moves_its_window_and_runs_low_from_its_renewal() -> None:
    lease = make_lease(amount=1_000, requests=4, tokens=400)
    for _ in range(3):
        lease.admit(Demand(cost=100, tokens=10))
    assert lease.running_low(101.0)
    lease.renewed(amount=300, requests=3, tokens=0, asked_at=105.0, admit_for_s=10.5)
    assert (lease.granted, lease.requests, lease.tokens) == (1_300, 7, 400)
    assert lease.fresh == (1_000, 4, 370)  # what is left: measured from here on
    assert (lease.opened_at, lease.deadline) == (105.0, 115.0)
    assert lease.usable("basic", 112.0) and not lease.running_low(106.0)
    lease.admit(Demand(cost=100, tokens=10))
    assert not lease.running_low(106.0)  # 3 of the 4 left since the renewal
    lease.admit(Demand(cost=100, tokens=10))
    lease.admit(Demand(cost=100, tokens=10))
    assert lease.running_low(106.0)  # 1 of 4: less than half
    # The next ask is sized from the slice since the renewal, not from the totals.
    ask = next_ask(Demand(cost=100, tokens=10), lease, max_amount=10**9, max_requests=1_000)
    assert (ask.amount, ask.requests, ask.tokens) == (2_000, 8, 740)


def test_a_lease_its_account_stopped_using_is_idle_whatever_its_window() -> None:
    lease = make_lease(admit_for_s=100.5)  # a window to 200
    assert not lease.idle(129.9) and lease.idle(130.0)  # 30 s after it was asked for, unused
    lease.last_used = 150.0  # the edge admitted a request with it then
    assert not lease.idle(179.9) and lease.idle(180.0)
    assert lease.usable("basic", 180.0)  # its window is not what ends it


def test_a_top_up_is_granted_and_reserved_at_once() -> None:
    lease = make_lease()
    lease.admit(Demand(cost=300, tokens=10))
    lease.topped_up(200)
    assert (lease.granted, lease.reserved) == (1_200, 500)
    assert lease.fits(Demand(cost=700, tokens=10))
    assert not lease.fits(Demand(cost=701, tokens=10))


def test_the_first_ask_is_as_much_money_as_a_lease_may_hold_and_a_bursts_start() -> None:
    demand = Demand(cost=1_000, tokens=500)
    first = next_ask(demand, None, max_amount=10**9, max_requests=1_000)
    assert (first.amount, first.requests, first.tokens) == (10**9, 16, 8_000)
    assert (first.min_amount, first.min_tokens) == (1_000, 500)
    # The cap never goes below what the one request needs.
    assert next_ask(demand, None, max_amount=10, max_requests=1).amount == 1_000


def test_a_lease_used_up_by_demand_is_followed_by_one_twice_its_size() -> None:
    demand = Demand(cost=1_000, tokens=500)
    busy = make_lease(amount=10**6, requests=1_000, tokens=10**6)
    for _ in range(500):  # half of its requests: it ran low by use
        busy.admit(demand)
    second = next_ask(demand, busy, max_amount=10**9, max_requests=10_000)
    assert (second.amount, second.requests, second.tokens) == (2 * 10**6, 2_000, 2 * 10**6)
    capped = next_ask(demand, busy, max_amount=50_000, max_requests=100)
    assert (capped.amount, capped.requests) == (50_000, 100)


def test_a_lease_its_window_ended_is_followed_by_twice_what_it_admitted() -> None:
    demand = Demand(cost=1_000, tokens=500)
    quiet = make_lease(amount=10**6, requests=1_000, tokens=10**6)
    for _ in range(300):
        quiet.admit(demand)
    second = next_ask(demand, quiet, max_amount=10**9, max_requests=1_000)
    assert (second.amount, second.requests, second.tokens) == (600_000, 600, 300_000)
    idle = make_lease(amount=10**6, requests=1_000, tokens=10**6)
    idle.admit(demand)
    assert next_ask(demand, idle, max_amount=10**9, max_requests=1_000).requests == 4


def test_an_ask_makes_room_for_the_requests_waiting_for_it() -> None:
    demand = Demand(cost=1_000, tokens=500)
    first = next_ask(demand, None, max_amount=10**9, max_requests=1_000, waiting=40)
    assert (first.amount, first.requests, first.tokens) == (10**9, 40, 20_000)
    busy = make_lease(amount=16_000, requests=16, tokens=8_000)
    for _ in range(16):
        busy.admit(demand)
    # Doubling would ask for 32 more; 84 requests wait for this renewal.
    renewal = next_ask(demand, busy, max_amount=10**9, max_requests=1_000, waiting=84)
    assert (renewal.amount, renewal.requests, renewal.tokens) == (84_000, 84, 42_000)
    # Never past the caps, and fewer waiters than doubling gives change nothing.
    capped = next_ask(demand, busy, max_amount=50_000, max_requests=60, waiting=84)
    assert (capped.amount, capped.requests) == (50_000, 60)
    assert next_ask(demand, busy, max_amount=10**9, max_requests=1_000, waiting=3) == next_ask(
        demand, busy, max_amount=10**9, max_requests=1_000
    )


# -- the edge with an in-test billing -----------------------------------------------------------

CAPS: dict[str, int] = {"max_amount": 10**9, "max_requests": 1_000}


async def test_after_the_grant_requests_are_admitted_without_a_round_trip(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    leasing.admit_for_s = 5.0  # the sweep closes it about 4.5 s after it was asked for
    await send(env, 1)
    # No lease yet: the request waited for the grant it caused, not for a hold of its own.
    assert len(env.billing.requests) == 0
    assert len(leasing.grants) == 1
    await send(env, 5)
    events = await usage_events(env.bus, 6)
    by_lease = [e for e in events if e.admission == "lease"]
    assert len(by_lease) == 6
    assert len(env.billing.requests) == 0
    for event in by_lease:
        assert event.hold_id is None
        assert event.lease_reserved > 0
        assert event.lease_tokens > 0
    first = leasing.grants[0]
    assert first.account_id == env.account_id and first.plan == "basic"
    assert first.min_amount == by_lease[0].lease_reserved  # the request that asked for it

    async def closed() -> bool:
        return {c.lease_id for c in leasing.closes} >= {e.lease_id for e in by_lease}

    await wait_for(closed, timeout_s=20)
    for close in leasing.closes:
        assert_close_matches_events(close, events)


async def test_a_burst_on_a_fresh_account_waits_for_one_grant_and_runs_on_it(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    leasing.grant_delay_s = 0.1  # the burst's requests arrive while it is on its way
    sdk = env.anthropic()
    messages = await asyncio.gather(*(sdk.messages.create(**BODY) for _ in range(16)))
    assert all(m.content[0].type == "text" for m in messages)
    first, *later = leasing.grants
    assert not first.renew and first.requests >= 16  # one round trip for the whole burst
    assert len(env.billing.requests) == 0  # and no hold per request
    events = await usage_events(env.bus, 16)
    assert {e.admission for e in events} == {"lease"}
    assert {e.lease_id for e in events} == {first.lease_id}
    # The burst uses the whole first slice, so the lease may be renewed for what comes next (a
    # request of the burst that came late, on a loaded machine, admitted under it asks): only
    # ever in place, after the burst was admitted, never a grant of its own for a request.
    for renewal in later:
        assert renewal.renew and renewal.lease_id == first.lease_id
        assert renewal.admitted_requests >= 9  # asked once over half the slice was admitted


async def test_a_lease_running_low_under_demand_is_renewed_at_twice_its_size(
    bus: Bus, leasing: LeaseBilling
) -> None:
    leasing.requests, leasing.amount = 8, 10_000  # what billing grants whatever is asked
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=1_000
    )
    demand = Demand(cost=1_000, tokens=100)
    await granted_lease(leases, leasing, demand)
    for _ in range(5):  # over half of it: running low, the renewal is asked for
        assert leases.admit("acct_t", "basic", demand) is not None

    async def renewed() -> bool:
        return len(leasing.grants) == 2

    await wait_for(renewed)
    renewal = leasing.grants[1]
    assert (renewal.requests, renewal.amount) == (16, 20_000)
    # In place: the same lease, with what it admitted so far; no close, no second lease.
    assert renewal.renew and renewal.lease_id == leasing.grants[0].lease_id
    assert (renewal.admitted_requests, renewal.reserved_amount) == (5, 5_000)
    await asyncio.sleep(0.05)  # the reply is applied after the responder answered
    assert leasing.closes == []
    for _ in range(8):  # 3 left of the first 8, and the 8 the renewal added
        share = leases.admit("acct_t", "basic", demand)
        assert share is not None and share.lease_id == renewal.lease_id
    await leases.close_all(timeout_s=1.0)
    assert len(leasing.closes) == 1
    assert leasing.closes[0].lease_id == renewal.lease_id
    assert leasing.closes[0].admitted_requests == 13
    assert leasing.closes[0].reserved_amount == 13_000


async def test_waiters_a_renewal_does_not_cover_wait_for_the_next_one(
    bus: Bus, leasing: LeaseBilling
) -> None:
    leasing.requests, leasing.grant_delay_s = 2, 0.05  # each grant or renewal: 2 requests
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=1_000
    )
    demand = Demand(cost=1_000, tokens=100)
    await granted_lease(leases, leasing, demand)
    assert leases.admit("acct_t", "basic", demand) is not None
    assert leases.admit("acct_t", "basic", demand) is not None  # used up: a renewal is asked
    assert leases.admit("acct_t", "basic", demand) is None and leases.granting("acct_t")
    shares = await asyncio.gather(
        *(leases.admit_after_grant("acct_t", "basic", demand) for _ in range(3))
    )
    # Two fit what the renewal added; the third waited for the one after, not for billing.
    assert all(share is not None for share in shares)
    assert [g.renew for g in leasing.grants] == [False, True, True]
    await leases.close_all(timeout_s=1.0)


async def test_a_burst_past_the_first_lease_takes_one_renewal_sized_for_its_waiters(
    bus: Bus, leasing: LeaseBilling
) -> None:
    # 100 new streams of one account at once: the first grant (16 requests) arrives while all
    # of them wait; the 17th asks for a renewal with room for the 84 still waiting, so the burst
    # is admitted in two round trips (doubling: 16, 32, 64, three renewals in a row, and past
    # the admission timeout each waiter would have asked billing for a hold of its own).
    leasing.grant_delay_s = 0.05
    leases = Leases(bus, Metrics(), edge_id="edge-t", timeout_s=2.0, **CAPS)
    demand = Demand(cost=1_000, tokens=100)

    async def one() -> object:
        share = leases.admit("acct_t", "basic", demand)
        if share is None and leases.granting("acct_t"):
            share = await leases.admit_after_grant("acct_t", "basic", demand)
        return share

    shares = await asyncio.gather(*(one() for _ in range(100)))
    assert all(share is not None for share in shares)
    assert [g.renew for g in leasing.grants] == [False, True]
    assert leasing.grants[1].requests >= 84
    await leases.close_all(timeout_s=1.0)
    assert [c.admitted_requests for c in leasing.closes] == [100]


async def test_a_burst_waits_for_a_late_grant_rather_than_asking_billing_each(
    bus: Bus, leasing: LeaseBilling
) -> None:
    # Billing busy: the grant takes longer than the admission timeout. The requests waiting for
    # it are admitted on it when it comes (each one giving up and asking billing for a hold of
    # its own only made a busy billing busier).
    leasing.grant_delay_s = 0.4
    leases = Leases(bus, Metrics(), edge_id="edge-t", timeout_s=0.1, rpc_timeout_s=5.0, **CAPS)
    demand = Demand(cost=1_000, tokens=100)
    assert leases.admit("acct_t", "basic", demand) is None  # asks
    shares = await asyncio.gather(
        *(leases.admit_after_grant("acct_t", "basic", demand) for _ in range(10))
    )
    assert all(share is not None for share in shares)
    assert [g.renew for g in leasing.grants] == [False]  # one grant, no hold per request
    await leases.close_all(timeout_s=1.0)


async def test_a_request_the_lease_cannot_cover_goes_to_billing(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    leasing.requests = 1  # each lease admits one request (and is not renewed)
    leasing.renew_decision = "declined"
    await first_lease(env, leasing)
    await send(env, 4)
    events = await usage_events(env.bus, 5)
    per_lease: dict[str, int] = {}
    for event in events:
        if event.lease_id is not None:
            per_lease[event.lease_id] = per_lease.get(event.lease_id, 0) + 1
    assert per_lease and max(per_lease.values()) == 1
    assert len(env.billing.requests) == 5 - sum(per_lease.values())


async def test_a_declined_lease_leaves_admission_to_billing_and_is_not_asked_every_time(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    leasing.decision = "declined"
    await send(env, 6)
    events = await usage_events(env.bus, 6)
    assert {e.admission for e in events} == {"billing"}
    assert len(env.billing.requests) == 6
    assert 1 <= len(leasing.grants) < 6  # backed off after the refusal


async def test_a_plan_change_retires_the_lease_of_the_old_plan(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    await first_lease(env, leasing)
    basic_lease = leasing.grants[0].lease_id
    await send(env, 1)
    await put_key(env.bus, env.key, key_record(env.account_id, plan="pro"))
    sent = 2

    async def pro_lease_asked() -> bool:
        nonlocal sent
        await send(env, 1)
        sent += 1
        return any(g.plan == "pro" for g in leasing.grants)

    await wait_for(pro_lease_asked, step_s=0.1)

    async def basic_closed() -> bool:
        return any(c.lease_id == basic_lease for c in leasing.closes)

    await wait_for(basic_closed)
    events = await usage_events(env.bus, sent)
    plan_of = {g.lease_id: g.plan for g in leasing.grants}
    assert any(e.lease_id == basic_lease for e in events)
    for event in events:
        if event.lease_id is not None:
            assert event.plan == plan_of[event.lease_id]
    assert events[-1].plan == "pro"
    close = next(c for c in leasing.closes if c.lease_id == basic_lease)
    assert_close_matches_events(close, events)


async def test_new_terms_for_the_plan_retire_the_lease_granted_on_the_old_ones(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    await first_lease(env, leasing)  # its request waited for it and was admitted under it
    old = leasing.grants[0].lease_id
    (before,) = await usage_events(env.bus, 1)
    shipped = default_catalogue()
    basic = shipped.plan("basic").model_copy(update={"requests_per_minute": 3})
    changed = shipped.model_copy(update={"plans": (basic, shipped.plan("pro"))})
    snapshot = CatalogueSnapshot(version=10**6, published_at=datetime.now(UTC), catalogue=changed)
    kv = await env.bus.ensure_kv(CATALOGUE_BUCKET)
    await kv.put(CATALOGUE_KEY, snapshot.model_dump_json().encode())
    mirror = env.edge.app.service.catalogue_mirror

    async def edge_has_it() -> bool:
        return mirror.version == 10**6

    await wait_for(edge_has_it)
    await send(env, 1)  # finds the new terms: not admitted under the lease of the old ones
    events = await usage_events(env.bus, 2)
    (after,) = [e for e in events if e.event_id != before.event_id]
    assert after.lease_id != old

    async def old_lease_closed() -> bool:
        return any(c.lease_id == old for c in leasing.closes)

    await wait_for(old_lease_closed)
    closed = next(c for c in leasing.closes if c.lease_id == old)
    assert closed.admitted_requests == sum(e.lease_id == old for e in events)


async def test_the_edge_hands_its_leases_back_when_it_stops(
    env: EdgeEnv, leasing: LeaseBilling
) -> None:
    await first_lease(env, leasing)
    await send(env, 2)
    events = await usage_events(env.bus, 3)
    await asyncio.to_thread(env.edge.stop)
    lease_id = leasing.grants[-1].lease_id
    close = next(c for c in leasing.closes if c.lease_id == lease_id)
    assert_close_matches_events(close, events)


# -- top-ups and the close, through a real NATS ---------------------------------------------------


async def granted_lease(leases: Leases, leasing: LeaseBilling, demand: Demand) -> None:
    assert leases.admit("acct_t", "basic", demand) is None  # asks for one

    async def granted() -> bool:
        return len(leasing.grants) >= 1

    await wait_for(granted)
    await asyncio.sleep(0.05)  # the reply is applied after the responder answered


async def test_a_top_up_raises_the_share_and_the_lease_and_never_races_its_close(
    bus: Bus, leasing: LeaseBilling
) -> None:
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=100
    )
    demand = Demand(cost=1_000, tokens=100)
    leasing.amount = 4_000  # what billing grants
    await granted_lease(leases, leasing, demand)
    share = leases.admit("acct_t", "basic", demand)
    assert share is not None
    assert await leases.top_up(share, 500)
    assert share.reserved == 1_500
    assert (share.held.lease.granted, share.held.lease.reserved) == (4_500, 1_500)

    # A slow top-up in flight when the lease is retired: the close waits for it and counts it.
    leasing.top_up_delay_s = 0.3
    pending = asyncio.ensure_future(leases.top_up(share, 700))
    await asyncio.sleep(0.05)
    leases.forget("acct_t")
    assert await pending

    async def closed() -> bool:
        return len(leasing.closes) == 1

    await wait_for(closed)
    assert leasing.order[-2:] == ["top_up", "close"]
    assert leasing.closes[0].reserved_amount == 2_200 == share.reserved
    assert leasing.closes[0].admitted_requests == 1

    # After the close, a top-up still reaches billing (which counts it) but not the lease sums.
    leasing.top_up_delay_s = 0.0
    assert await leases.top_up(share, 100)
    assert share.reserved == 2_300
    assert share.held.lease.reserved == 2_200
    leasing.grant_top_ups = False
    assert not await leases.top_up(share, 100)
    assert share.reserved == 2_300
    await leases.close_all(timeout_s=1.0)


async def test_with_nats_down_the_edge_goes_on_admitting_within_its_lease(
    env: EdgeEnv, leasing: LeaseBilling, nats_server: EmbeddedNats
) -> None:
    # A lease of 1 USD, 100 requests and a million tokens.
    leasing.amount, leasing.requests, leasing.tokens = 10**9, 100, 10**6
    await first_lease(env, leasing)
    await asyncio.sleep(0.05)
    nats_server.stop()
    try:
        await send(env, 20)  # no billing, no relay: the lease and the spool carry them
    finally:
        nats_server.start()
    events = await usage_events(env.bus, 21, timeout_s=30)
    assert sorted(e.admission for e in events) == ["lease"] * 21
    leased = {e.lease_id for e in events if e.admission == "lease"}
    assert leased == {leasing.grants[0].lease_id}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def swept_leases(
    bus: Bus, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> tuple[Leases, asyncio.Event, asyncio.Future[None]]:
    """Leases on ``clock`` whose sweep runs (every 10 ms, not every second) until the event."""
    monkeypatch.setattr(lease_client, "SWEEP_INTERVAL_S", 0.01)
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=100,
        clock=clock,
    )  # fmt: skip
    stop = asyncio.Event()
    return leases, stop, asyncio.ensure_future(leases.sweep(stop))


async def test_a_lease_past_its_window_is_replaced_by_one_sized_from_what_it_admitted(
    bus: Bus, leasing: LeaseBilling
) -> None:
    clock = FakeClock()
    leases = Leases(
        bus,
        Metrics(),
        edge_id="edge-t",
        timeout_s=2.0,
        max_amount=10**9,
        max_requests=100,
        clock=clock,
    )
    demand = Demand(cost=1_000, tokens=100)
    await granted_lease(leases, leasing, demand)
    assert leasing.grants[0].requests == 16  # the first: a burst's start
    for _ in range(3):
        assert leases.admit("acct_t", "basic", demand) is not None
    clock.now += leasing.admit_for_s  # the window is over
    assert leases.admit("acct_t", "basic", demand) is None

    async def renewed() -> bool:
        return len(leasing.grants) == 2 and len(leasing.closes) == 1

    await wait_for(renewed)
    assert leasing.grants[1].requests == 6  # twice what the last one admitted
    assert leasing.closes[0].admitted_requests == 3
    assert leasing.closes[0].reserved_amount == 3_000
    await leases.close_all(timeout_s=1.0)


async def test_a_lease_unused_for_a_while_is_kept_then_handed_back_with_its_exact_sums(
    bus: Bus, leasing: LeaseBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An account that sends every 20 s keeps its lease (no grant and close per request); one
    # that stopped gets it back once IDLE_CLOSE_S passed, with exactly what it admitted.
    leasing.admit_for_s = 300.0  # only the idle close ends it here, not its window
    clock = FakeClock()
    leases, stop, sweeping = swept_leases(bus, clock, monkeypatch)
    demand = Demand(cost=1_000, tokens=100)
    await granted_lease(leases, leasing, demand)
    shares = []
    for _ in range(3):
        clock.now += 20.0  # more than the old 10 s close, less than IDLE_CLOSE_S
        await asyncio.sleep(0.05)  # sweep rounds at this time
        share = leases.admit("acct_t", "basic", demand)
        assert share is not None
        shares.append(share)
    assert len(leasing.grants) == 1 and leasing.closes == []
    clock.now += IDLE_CLOSE_S

    async def closed() -> bool:
        return len(leasing.closes) == 1

    await wait_for(closed)
    (close,) = leasing.closes
    assert close.lease_id == leasing.grants[0].lease_id
    assert close.admitted_requests == 3
    assert close.reserved_amount == sum(s.reserved for s in shares) == 3_000
    assert close.reserved_tokens == sum(s.tokens for s in shares) == 300
    stop.set()
    await asyncio.wait_for(sweeping, timeout=5)
    await leases.close_all(timeout_s=1.0)
    assert len(leasing.closes) == 1  # handed back once


async def test_refused_grants_back_off_doubling_and_are_forgotten_after_a_while(
    bus: Bus, leasing: LeaseBilling
) -> None:
    clock = FakeClock()
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=100,
        clock=clock,
    )  # fmt: skip
    leasing.decision = "declined"
    demand = Demand(cost=1_000, tokens=100)

    async def asked(count: int) -> bool:
        async def enough() -> bool:
            return len(leasing.grants) == count

        await wait_for(enough)
        await asyncio.sleep(0.05)  # the reply is applied after the responder answered
        return True

    assert leases.admit("acct_t", "basic", demand) is None
    await asked(1)
    leases.admit("acct_t", "basic", demand)  # within the first second: not asked again
    clock.now += 1.1
    leases.admit("acct_t", "basic", demand)
    await asked(2)
    clock.now += 1.1  # the second refusal waits two seconds
    leases.admit("acct_t", "basic", demand)
    await asyncio.sleep(0.1)
    assert len(leasing.grants) == 2
    clock.now += 1.0
    leases.admit("acct_t", "basic", demand)
    await asked(3)  # refused a third time: the next wait would be four seconds
    # Long after, the sweep forgets the refusals: the next one waits a second again.
    clock.now += 100
    stop = asyncio.Event()
    sweeping = asyncio.ensure_future(leases.sweep(stop))
    await asyncio.sleep(1.3)
    stop.set()
    await sweeping
    leases.admit("acct_t", "basic", demand)
    await asked(4)
    clock.now += 1.1
    leases.admit("acct_t", "basic", demand)
    await asked(5)
    await leases.close_all(timeout_s=1.0)


@given(
    input_tokens=st.integers(min_value=0, max_value=2_000_000),
    max_tokens=st.integers(min_value=1, max_value=200_000),
    input_price=st.integers(min_value=0, max_value=100_000_000_000),
    output_price=st.integers(min_value=0, max_value=500_000_000_000),
    plan=st.sampled_from(["basic", "pro"]),
)
def test_a_request_reserves_from_its_lease_what_billing_would_hold_for_it(
    input_tokens: int, max_tokens: int, input_price: int, output_price: int, plan: str
) -> None:
    """The edge's worst case (what a lease gives a request) is billing's hold, to the nano."""
    catalogue = default_catalogue()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    edge_price = PricePoint(
        effective_from=moment, input_usd_per_mtok=input_price, output_usd_per_mtok=output_price
    )
    billing_price = Price(1, "m", moment, input_price, output_price)
    discount = catalogue.plan(plan).discount_bps
    multipliers = catalogue.cache_multipliers_bps
    reserved = worst_case(
        edge_price, discount, multipliers, input_tokens=input_tokens, max_tokens=max_tokens
    )
    held = hold_nano(
        input_tokens, max_tokens, billing_price, discount_bps=discount, multipliers=multipliers
    )
    assert reserved == held


async def test_a_lease_granted_while_the_edge_stops_is_handed_straight_back(
    bus: Bus, leasing: LeaseBilling
) -> None:
    leases = Leases(
        bus, Metrics(), edge_id="edge-t", timeout_s=2.0, max_amount=10**9, max_requests=100
    )
    leasing.grant_delay_s = 0.3
    assert leases.admit("acct_t", "basic", Demand(cost=1_000, tokens=100)) is None  # asks
    await asyncio.sleep(0.05)
    await leases.close_all(timeout_s=2.0)  # the grant is answered while this waits
    assert [g.lease_id for g in leasing.grants] == [c.lease_id for c in leasing.closes]
    assert leasing.closes[0].admitted_requests == 0
    assert leases.admit("acct_t", "basic", Demand(cost=1_000, tokens=100)) is None
    await asyncio.sleep(0.5)
    assert len(leasing.grants) == 1  # a stopping edge asks for no more


class CountingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def test_the_sweep_sleeps_while_nothing_is_held_and_wakes_for_a_lease(
    bus: Bus, leasing: LeaseBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each round of the sweep reads the clock; at rest (no lease, no refusal) there is none.
    clock = CountingClock()
    leases, stop, sweeping = swept_leases(bus, clock, monkeypatch)
    await asyncio.sleep(0.3)  # thirty rounds, were it on a timer
    assert clock.reads == 0
    demand = Demand(cost=1_000, tokens=100)
    await granted_lease(leases, leasing, demand)
    clock.now += leasing.admit_for_s  # the window is over: the sweep hands the lease back

    async def closed() -> bool:
        return len(leasing.closes) == 1

    await wait_for(closed)
    stop.set()
    await asyncio.wait_for(sweeping, timeout=5)
    await leases.close_all(timeout_s=1.0)
