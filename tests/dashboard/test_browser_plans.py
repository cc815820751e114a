"""The dashboard's plan page follows the operator's plans at run time: a plan made choosable is
offered (at its one-time price, paid from the balance), one withdrawn is not, and the overview
shows the account's own limits when the operator gave it some."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import credit, my_account_id, reload_until, shoot, sign_up_and_in
from tests.e2e.support import Deployment

pytestmark = pytest.mark.slow


def test_customers_choose_among_the_plans_the_operator_offers(
    page: Page, deployment: Deployment, screenshots: Path
) -> None:
    sign_up_and_in(page, "plans@example.com")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    account_id = my_account_id(page)
    with deployment.admin() as admin:
        team = {"price_usd": "5.00", "requests_per_minute": 1000, "tokens_per_minute": 4_000_000,
                "discount_bps": 7500, "display_name": "Team", "choosable": True}  # fmt: skip
        assert admin.put("/admin/v1/plans/team", json=team).status_code == 200
        assert admin.put("/admin/v1/plans/pro", json={"choosable": False}).status_code == 200
        credit(admin, account_id, "6.00")
    page.goto("/plan")
    reload_until(page, "#plan-team", "Team")
    expect(page.get_by_role("heading", name="Pro")).to_have_count(0)
    page.get_by_role("button", name="Upgrade to Team for 5.00 USD").click()
    expect(page.get_by_role("status")).to_contain_text("5.00 USD was charged")
    expect(page.get_by_role("status")).to_contain_text("now 1.00 USD")
    shoot(page, screenshots, "plan-team")
    with deployment.admin() as admin:
        own = {"limits": {"requests_per_minute": 2000}}
        assert admin.patch(f"/admin/v1/accounts/{account_id}", json=own).status_code == 200
    page.goto("/")
    expect(page.get_by_role("heading", name="Plan: Team")).to_be_visible()
    limits = page.locator("#plan + ul li").first
    reload_until(page, "#plan + ul li:first-child", "2000 requests a minute")
    expect(limits).to_have_text("2000 requests a minute")
