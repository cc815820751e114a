"""The console's plans page in a real browser against the real processes and two edges: the
plans now and every version; Basic's requests/min changed in the page holds on both edges within
a second; a change without a reason, or with a start in the past, is refused and changes
nothing; an account's own limit set in the page's section holds, and "plan" drops it. axe-core in light and dark."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from aiapi_testkit.plugin import SpawnFn
from playwright.sync_api import Browser, expect

from tests.dashboard.conftest import console_page, make_operator, shoot
from tests.e2e.conftest import second_edge
from tests.e2e.support import (
    Deployment,
    open_account,
    refused_on_every_edge_within,
    traffic_on_every_edge,
)

pytestmark = pytest.mark.slow


def test_an_operator_changes_basics_requests_per_minute_in_the_console_on_both_edges(
    browser: Browser, deployment: Deployment, spawn: SpawnFn, tmp_path: Path, screenshots: Path
) -> None:
    edges = [deployment.edge_url, second_edge(deployment, spawn, tmp_path)]
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
    make_operator(deployment, "Ada", "ada@ops.example", "admin")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    ada = console_page(browser, deployment, "ada@ops.example")
    with httpx.Client(timeout=30) as http, ada as page:
        # Traffic on both edges first: each holds a lease of Basic's 200 a minute by now.
        traffic_on_every_edge(http, edges, headers)
        page.get_by_role("link", name="Plans").click()
        basic = page.locator("#plans tr[data-plan=basic]")
        expect(basic.locator(".rpm")).to_have_text("200")

        page.locator("#plan-plan").select_option("basic")
        page.locator("#plan-rpm").fill("3")
        page.locator("#plan-from").fill("2001-01-01T00:00")
        page.locator("#plan-reason").fill("too early")
        page.get_by_role("button", name="Save the new terms").click()
        expect(page.get_by_role("alert")).to_contain_text("past")
        expect(basic.locator(".rpm")).to_have_text("200")

        page.locator("#plan-from").fill("")
        page.locator("#plan-reason").fill("Basic is abused; slow it down")
        page.get_by_role("button", name="Save the new terms").click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        refused_on_every_edge_within(http, edges, headers, 1.0)
        expect(basic.locator(".rpm")).to_have_text("3")
        expect(page.locator("#versions-table tr[data-plan=basic]")).to_have_count(2)
        shoot(page, screenshots, "console-plans")

        # The account's own requests/min, over its plan's; then "plan": Basic's (3) again. An
        # account's page links here with the account filled in.
        page.goto(f"/admin/plans?account_id={account_id}#account-terms")
        expect(page.locator("#account-id")).to_have_value(account_id)
        for rpm, reason, expected in (("2", "a customer of its own terms", 2),
                                      ("plan", "back to Basic", 3)):  # fmt: skip
            page.locator("#account-rpm").fill(rpm)
            page.locator("#account-reason").fill(reason)
            with page.expect_navigation():  # the same page and notice: wait for the new one
                page.get_by_role("button", name="Save the account's terms").click()
            expect(page.get_by_role("status")).to_contain_text("Saved the account's own terms")
            with deployment.admin() as admin:
                terms = admin.get(f"/admin/v1/accounts/{account_id}").json()
            assert (terms["requests_per_minute"], terms["discount_bps"]) == (expected, 7000)
    with deployment.admin() as admin:
        plans = admin.get("/admin/v1/plans").json()
        shown = next(p for p in plans["plans"] if p["id"] == "basic")
        assert (shown["requests_per_minute"], shown["discount_bps"]) == (3, 7000)
        audit = admin.get("/admin/v1/audit", params={"operator": "Ada"}).json()["data"]
    assert [(e["route"], e["status"], e["reason"]) for e in reversed(audit)] == [
        ("/admin/plans", 400, "too early"),
        ("/admin/plans", 303, "Basic is abused; slow it down"),
        ("/admin/plans/account-terms", 303, "a customer of its own terms"),
        ("/admin/plans/account-terms", 303, "back to Basic"),
    ]
