"""Plans, meter prices and accounts' own terms as effective-dated data, through billing's subjects
on a running service: a change applies to requests that start after it and never to one admitted
before it (held or under a lease), a change from a future moment waits for it, an account's own
limits and discount beat its plan's, and a meter priced at run time is billed at its price."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.events import Record
from aiapi_shared.money import parse_usd

from tests.billing.conftest import admission, admit, credit, eventually, scalar, usage_event
from tests.billing.test_leases import _grant_request, grant, lease_event

# claude-sonnet-4-6, 1000 input and 500 output tokens (usage_event's default): 0.0105 USD list.
LIST = parse_usd("0.0105")


def at_discount(bps: int) -> int:
    return -(-LIST * (10_000 - bps) // 10_000)


async def change(bus: Bus, subject: str, command: Record) -> api.CatalogueReply | api.ApiError:
    data = await bus.request(subject, command.model_dump_json().encode(), timeout_s=10.0)
    try:
        return api.CatalogueReply.model_validate_json(data)
    except ValueError:
        return api.ApiError.model_validate_json(data)


async def put_plan(bus: Bus, **fields: Any) -> api.CatalogueReply:
    reply = await change(bus, api.CATALOGUE_PLAN_SUBJECT, api.PutPlanCommand(**fields))
    assert isinstance(reply, api.CatalogueReply), reply
    return reply


async def cost_of(db: psycopg.AsyncConnection[Any], request_id: str) -> int:
    async def settled() -> bool:
        found = await scalar(db, "SELECT 1 FROM usage_records WHERE request_id = %s", request_id)
        return found is not None

    await eventually(settled)
    return int(await scalar(db, "SELECT cost FROM usage_records WHERE request_id = %s", request_id))


async def statuses(bus: Bus, account_id: str, count: int, plan: str = "basic") -> list[str]:
    replies = [await admit(bus, admission(account_id, plan=plan)) for _ in range(count)]
    return [r.decision for r in replies]


async def test_a_new_discount_prices_requests_that_start_after_it_and_none_admitted_before(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_p1", "10.00")
    before = admission("acc_p1")
    held_before = await admit(bus, before)
    assert held_before.decision == "admit"
    reply = await put_plan(bus, id="basic", discount_bps=5000)
    assert reply.catalogue.plan("basic").discount_bps == 5000
    after = admission("acc_p1")
    held_after = await admit(bus, after)
    # The hold of the request admitted after the change already counts the new discount.
    assert held_after.hold_amount is not None and held_before.hold_amount is not None
    assert held_after.hold_amount > held_before.hold_amount
    for request in (before, after):
        await bus.publish_event(
            usage_event("acc_p1", request_id=request.request_id, started_at=request.started_at)
        )
    assert await cost_of(db, before.request_id) == at_discount(7000)  # admitted under 70% off
    assert await cost_of(db, after.request_id) == at_discount(5000)
    assert await scalar(db, "SELECT holds FROM accounts WHERE account_id = 'acc_p1'") == 0


async def test_a_change_leaves_a_request_admitted_under_a_lease_at_its_price(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_p2", "10.00")
    lease = _grant_request("acc_p2")
    assert (await grant(bus, lease)).decision == "granted"
    admitted = lease_event("acc_p2", lease.lease_id, parse_usd("0.01")).model_copy(
        update={"started_at": datetime.now(UTC)}
    )
    await put_plan(bus, id="basic", discount_bps=0, requests_per_minute=1)
    await bus.publish_event(admitted)
    assert await cost_of(db, admitted.request_id) == at_discount(7000)


async def test_a_change_from_a_future_moment_waits_for_it(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_p3", "10.00")
    await credit(bus, "acc_p4", "10.00")
    starts = datetime.now(UTC) + timedelta(seconds=3)
    reply = await put_plan(
        bus, id="basic", effective_from=starts, requests_per_minute=2, discount_bps=0
    )
    assert reply.catalogue.plan("basic").requests_per_minute == 200  # not yet
    assert reply.catalogue.plan("basic", starts).requests_per_minute == 2
    assert await statuses(bus, "acc_p3", 4) == ["admit"] * 4
    early = usage_event("acc_p3", started_at=datetime.now(UTC))
    await bus.publish_event(early)
    assert await cost_of(db, early.request_id) == at_discount(7000)
    await asyncio.sleep((starts - datetime.now(UTC)).total_seconds() + 0.05)  # until it starts
    assert await statuses(bus, "acc_p4", 3) == ["admit", "admit", "rate_limited"]
    late = usage_event("acc_p4", started_at=datetime.now(UTC))
    await bus.publish_event(late)
    assert await cost_of(db, late.request_id) == LIST


async def test_an_accounts_own_limits_and_discount_beat_its_plans(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    for account_id in ("acc_big", "acc_small", "acc_other"):
        await credit(bus, account_id, "10.00")
    own = api.PutAccountTermsCommand(
        account_id="acc_big", set_limits=True, requests_per_minute=2000, set_discount=True,
        discount_bps=9000,
    )  # fmt: skip
    reply = await change(bus, api.ACCOUNT_TERMS_SUBJECT, own)
    assert isinstance(reply, api.CatalogueReply), reply
    small = api.PutAccountTermsCommand(account_id="acc_small", set_limits=True,
                                       requests_per_minute=2)  # fmt: skip
    assert isinstance(await change(bus, api.ACCOUNT_TERMS_SUBJECT, small), api.CatalogueReply)
    assert await statuses(bus, "acc_small", 3) == ["admit", "admit", "rate_limited"]
    assert await statuses(bus, "acc_other", 3) == ["admit"] * 3  # Basic's 200
    # 2,000 a minute: a burst of 250 is admitted where Basic's 200 would refuse 50.
    decisions = await asyncio.gather(*(admit(bus, admission("acc_big")) for _ in range(250)))
    assert [d.decision for d in decisions].count("admit") == 250
    event = usage_event("acc_big", started_at=datetime.now(UTC))
    await bus.publish_event(event)
    assert await cost_of(db, event.request_id) == at_discount(9000)
    # Only the discount changes now: the limits set before are kept.
    back = api.PutAccountTermsCommand(account_id="acc_big", set_discount=True, discount_bps=None)
    reply = await change(bus, api.ACCOUNT_TERMS_SUBJECT, back)
    assert isinstance(reply, api.CatalogueReply)
    terms = reply.catalogue.terms("basic", "acc_big", datetime.now(UTC))
    assert (terms.requests_per_minute, terms.discount_bps) == (2000, 7000)


async def test_a_change_that_starts_in_the_past_is_refused(billing: Service, bus: Bus) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    for subject, command in (
        (api.CATALOGUE_PLAN_SUBJECT, api.PutPlanCommand(id="basic", effective_from=past,
                                                        discount_bps=0)),
        (api.CATALOGUE_METER_SUBJECT, api.PutMeterPriceCommand(meter="speed:fast",
                                                               effective_from=past)),
        (api.ACCOUNT_TERMS_SUBJECT, api.PutAccountTermsCommand(account_id="acc_x",
                                                               effective_from=past)),
    ):  # fmt: skip
        refused = await change(bus, subject, command)
        assert isinstance(refused, api.ApiError) and refused.status == 400
        assert "past" in refused.message


async def test_a_new_plan_needs_its_terms_and_customers_cannot_buy_it_unless_offered(
    billing: Service, bus: Bus
) -> None:
    partial = await change(bus, api.CATALOGUE_PLAN_SUBJECT, api.PutPlanCommand(id="enterprise"))
    assert isinstance(partial, api.ApiError) and "needs" in partial.message
    reply = await put_plan(
        bus, id="enterprise", price_usd=0, requests_per_minute=2, tokens_per_minute=10**6,
        discount_bps=8500,
    )  # fmt: skip
    enterprise = reply.catalogue.plan("enterprise")
    assert (enterprise.display_name, enterprise.choosable) == ("Enterprise", False)
    await credit(bus, "acc_e", "10.00")
    assert await statuses(bus, "acc_e", 3, "enterprise") == ["admit", "admit", "rate_limited"]
    buy = api.PurchasePlanCommand(account_id="acc_e", plan="enterprise")
    data = await bus.request(
        api.PURCHASE_PLAN_SUBJECT, buy.model_dump_json().encode(), timeout_s=10.0
    )
    refused = api.ApiError.model_validate_json(data)
    assert refused.status == 400 and "not offered" in refused.message
    await put_plan(bus, id="enterprise", choosable=True)
    data = await bus.request(
        api.PURCHASE_PLAN_SUBJECT, buy.model_dump_json().encode(), timeout_s=10.0
    )
    bought = api.PurchasePlanReply.model_validate_json(data)
    assert (bought.plan, bought.price) == ("enterprise", 0)


async def test_a_meter_priced_at_run_time_bills_what_starts_after_it(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_f", "10.00")
    assert billing.catalogue.meter_at("speed:fast", datetime.now(UTC)) is None  # the shipped
    priced = api.PutMeterPriceCommand(meter="speed:fast", input_bps=60_000, output_bps=60_000)
    reply = await change(bus, api.CATALOGUE_METER_SUBJECT, priced)
    assert isinstance(reply, api.CatalogueReply), reply
    fast = usage_event("acc_f", started_at=datetime.now(UTC), speed="fast")  # type: ignore[arg-type]
    await bus.publish_event(fast)
    assert await cost_of(db, fast.request_id) == at_discount(7000) * 6
