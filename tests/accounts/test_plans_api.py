"""Plans and prices on the operator API (forwarded to billing, which owns them), an account's own
limits and discount through its PATCH, and customers choosing only among the plans billing's
published catalogue marks choosable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiapi_shared import billing_api
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events.records_v1 import CATALOGUE_BUCKET, CATALOGUE_KEY, CatalogueSnapshot

from tests.accounts.conftest import ADMIN, Running, respond
from tests.accounts.test_customer_api import csrf
from tests.accounts.test_operator_api import balance_reply

SHIPPED = default_catalogue()


def catalogue_reply(_: dict[str, Any]) -> billing_api.CatalogueReply:
    return billing_api.CatalogueReply(version=7, catalogue=SHIPPED)


async def publish(running: Running, **changes: Any) -> None:
    """Billing's publication of a catalogue with ``changes``; wait until accounts follows it."""
    catalogue = SHIPPED.model_copy(update=changes)
    snapshot = CatalogueSnapshot(version=50, published_at=datetime.now(UTC), catalogue=catalogue)
    kv = await running.bus.ensure_kv(CATALOGUE_BUCKET)
    await kv.put(CATALOGUE_KEY, snapshot.model_dump_json().encode())
    view = running.service.catalogue
    for _ in range(200):
        if view.version == 50:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("accounts did not follow the published catalogue")


async def test_a_plan_change_is_forwarded_to_billing_and_answered_with_every_version(
    running: Running,
) -> None:
    seen = await respond(running.bus, billing_api.CATALOGUE_PLAN_SUBJECT, catalogue_reply)
    answer = await running.admin.put(
        "/admin/v1/plans/basic",
        json={"requests_per_minute": 300, "effective_from": "2027-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    assert seen == [
        {
            "id": "basic",
            "effective_from": "2027-01-01T00:00:00Z",
            "display_name": None,
            "price_usd": None,
            "requests_per_minute": 300,
            "tokens_per_minute": None,
            "discount_bps": None,
            "choosable": None,
        }
    ]
    body = answer.json()
    assert [p["id"] for p in body["plans"]] == ["basic", "pro"]
    assert {v["state"] for v in body["versions"]} == {"current"}
    await respond(running.bus, billing_api.CATALOGUE_GET_SUBJECT, catalogue_reply)
    listed = await running.admin.get("/admin/v1/plans", headers=ADMIN)
    assert listed.json()["plans"][1]["price_usd"] == "19.00"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/v1/plans/Basic", {"discount_bps": 1}),  # not a plan name
        ("/admin/v1/plans/basic", {"discount_bps": 10_001}),
        ("/admin/v1/plans/basic", {"requests_per_minute": 0}),
        ("/admin/v1/plans/basic", {"rpm": 5}),
        ("/admin/v1/prices/meters/speed:fast", {"input_bps": -1}),
        ("/admin/v1/prices/meters/Bad Meter", {}),
        (
            "/admin/v1/prices/models/claude-haiku-4-5",
            {
                "input_usd_per_mtok": "1.00",
                "output_usd_per_mtok": "5.00",
                "effective_from": "2020-01-01T00:00:00Z",
            },
        ),
    ],
)
async def test_bad_plan_and_price_changes_are_400_before_billing_is_asked(
    running: Running, path: str, body: dict[str, Any]
) -> None:
    answer = await running.admin.put(path, json=body, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_billing_refusing_a_change_in_the_past_is_a_400(running: Running) -> None:
    refusal = billing_api.ApiError(
        error="invalid_request_error", message="effective_from is in the past", status=400
    )
    await respond(running.bus, billing_api.CATALOGUE_METER_SUBJECT, lambda _: refusal)
    answer = await running.admin.put(
        "/admin/v1/prices/meters/speed:fast",
        json={"input_bps": 60_000, "output_bps": 60_000, "effective_from": "2020-01-01T00:00Z"},
        headers=ADMIN,
    )
    assert answer.status_code == 400
    assert "past" in answer.json()["error"]["message"]


async def test_patch_sets_the_accounts_own_limits_and_drops_its_own_discount(
    running: Running,
) -> None:
    account_id = await running.new_account()
    await respond(running.bus, billing_api.ACCOUNT_SUBJECT, balance_reply)
    seen = await respond(running.bus, billing_api.ACCOUNT_TERMS_SUBJECT, catalogue_reply)
    url = f"/admin/v1/accounts/{account_id}"
    answer = await running.admin.patch(
        url, json={"limits": {"requests_per_minute": 2000}}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    dropped = await running.admin.patch(url, json={"discount_bps": None}, headers=ADMIN)
    assert dropped.status_code == 200, dropped.text
    assert [
        (s["set_limits"], s["requests_per_minute"], s["set_discount"], s["discount_bps"])
        for s in seen
    ] == [(True, 2000, False, None), (False, None, True, None)]
    assert dropped.json()["requests_per_minute"] == 200  # the reply's catalogue: Basic's
    bad = await running.admin.patch(url, json={"limits": {"requests_per_minute": 0}}, headers=ADMIN)
    assert bad.status_code == 400


async def test_customers_choose_only_the_plans_marked_choosable(running: Running) -> None:
    team = SHIPPED.plan("pro").model_copy(update={"id": "team", "display_name": "Team"})
    hidden = SHIPPED.plan("pro").model_copy(update={"choosable": False})
    await publish(running, plans=(SHIPPED.plan("basic"), hidden, team))
    listed = (await running.client.get("/api/v1/plans")).json()
    assert [p["id"] for p in listed] == ["basic", "team"]
    token = await running.signed_in()
    seen = await respond(
        running.bus,
        billing_api.PURCHASE_PLAN_SUBJECT,
        lambda r: {"plan": r["plan"], "price": "19.00", "balance": "1.00"},
    )
    url = "/api/v1/account/plan"
    refused = await running.client.post(url, json={"plan": "pro"}, headers=csrf(token))
    assert refused.status_code == 400
    assert "team" in refused.json()["error"]["message"]
    chosen = await running.client.post(url, json={"plan": "team"}, headers=csrf(token))
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["account"]["plan"] == "team"
    assert [s["plan"] for s in seen] == ["team"]
