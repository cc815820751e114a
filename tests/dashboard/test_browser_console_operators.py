"""The console's operators pages and audit log in a real browser against the real processes.

An admin creates an operator, issues it a token (shown once; it works until revoked), revokes
it, disables the operator, and finds each change with its reason in the audit log's filtered
view. A support operator sees every page, but every write form it sends is refused with the
403 page and changes nothing (the refusals are on record); its browser runs without JavaScript,
as the forms need none. Each page passes axe-core in light
and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import console_page, make_operator, shoot
from tests.e2e.support import Deployment, eventually

pytestmark = pytest.mark.slow


def _submit(page: Page, form_id: str, button: str, reason: str) -> None:
    page.locator(f"#{form_id}-reason").fill(reason)
    page.get_by_role("button", name=button).click()


def _whoami(deployment: Deployment, token: str) -> int:
    answer = httpx.get(
        deployment.admin_url + "/admin/v1/whoami",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return answer.status_code


def _state(deployment: Deployment) -> dict[str, Any]:
    """What a write could change: the operators, their tokens, the upstream pool, the plans."""
    with deployment.admin() as admin:
        operators = admin.get("/admin/v1/operators").json()["data"]
        tokens = {
            o["id"]: admin.get(f"/admin/v1/operators/{o['id']}/tokens").json()["data"]
            for o in operators
        }
        pool = admin.get("/admin/v1/upstream-keys").json()["data"]
        plans = admin.get("/admin/v1/plans").json()
    return {
        "plans": plans,
        "operators": operators,
        "tokens": tokens,
        "pool": [(k["id"], k["enabled"], k["weight"], k["models"]) for k in pool],
    }


def test_an_admin_manages_operators_and_tokens_and_reads_the_audit_log(
    browser: Browser, deployment: Deployment, screenshots: Path
) -> None:
    make_operator(deployment, "Ada", "ada@ops.example", "admin")
    with console_page(browser, deployment, "ada@ops.example") as page:
        page.get_by_role("link", name="Operators").click()
        page.locator("#create-name").fill("Lin")
        page.locator("#create-email").fill("lin@ops.example")
        page.locator("#create-role").select_option("support")
        _submit(page, "create", "Create the operator", "new support hire")
        expect(page.get_by_role("heading", name="Lin", level=1)).to_be_visible()
        expect(page.get_by_role("status")).to_have_text("Created the operator.")

        lins_page = page.url.split("?")[0]
        page.locator("#token-name").fill("laptop")
        _submit(page, "token", "Create the token", "Lin works from a laptop")
        token = page.locator("#new-token-value").inner_text()
        assert token.startswith("aiapi_op_")
        assert _whoami(deployment, token) == 200
        shoot(page, screenshots, "console-operator", hide="#new-token-value")
        page.goto(lins_page)  # shown once: not on the page any more
        assert token not in page.content()

        row = page.locator("#token-list tbody tr", has_text="laptop")
        row.get_by_label("Reason for revoking laptop").fill("laptop lost")
        row.get_by_role("button", name="Revoke laptop").click()
        expect(page.get_by_role("status")).to_contain_text("Revoked the token")
        expect(row.locator(".state")).to_contain_text("revoked")
        assert _whoami(deployment, token) == 401

        _submit(page, "switch", "Disable the operator", "left the team")
        expect(page.locator("#operator-state")).to_have_text("disabled")
        page.get_by_role("link", name="Operators").first.click()
        expect(page.locator("#operators tbody tr", has_text="Lin").locator(".state")).to_have_text(
            "disabled"
        )
        shoot(page, screenshots, "console-operators")

        page.get_by_role("link", name="Audit log").click()
        page.get_by_label("Operator").fill("Ada")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/admin/audit?operator=Ada*")
        expect(page.locator("#audit td.reason")).to_have_text(
            ["left the team", "laptop lost", "Lin works from a laptop", "new support hire"]
        )
        expect(page.locator("#audit")).not_to_contain_text(token)
        shoot(page, screenshots, "console-audit")
        page.get_by_label("Operator").fill("nobody")
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_text("No entries match these filters.")).to_be_visible()


# Every write form of the console a support operator can reach: (its page, its button).
_FORMS = (
    ("/admin/upstream", "Add the key"),
    ("/admin/upstream/{key}", "Save"),
    ("/admin/upstream/{key}", "Disable the key"),
    ("/admin/upstream/{key}", "Test the key"),
    ("/admin/upstream/{key}/remove", "Remove the key"),
    ("/admin/operators", "Create the operator"),
    ("/admin/operators/{me}", "Disable the operator"),
    ("/admin/operators/{me}", "Create the token"),
    ("/admin/operators/{other}", "Revoke laptop"),
    ("/admin/plans", "Save the new terms"),
    ("/admin/plans", "Save the account's terms"),
)
_FILLS = {"number": "2", "email": "new@ops.example", "password": "sk-ant-support-tried-this"}


def test_a_support_operator_sees_every_page_but_every_write_form_is_refused(
    browser: Browser, deployment: Deployment
) -> None:
    other = make_operator(deployment, "Ada", "ada@ops.example", "admin")
    me = make_operator(deployment, "Sam", "sam@ops.example", "support")
    with deployment.admin() as admin:
        token = admin.post(f"/admin/v1/operators/{other}/tokens", json={"name": "laptop"})
        assert token.status_code == 201, token.text
    token_id = token.json()["id"]
    # The edge's own key, once the edge reported it.
    before = eventually(lambda: (found := _state(deployment))["pool"] and found)
    key = before["pool"][0][0]

    # With JavaScript off: the console's forms are plain HTML posts.
    with console_page(browser, deployment, "sam@ops.example", java_script_enabled=False) as page:
        for href, button in _FORMS:
            page.goto(href.format(key=key, me=me, other=other, token=token_id))
            expect(page.locator("#read-only")).to_be_visible()
            form = page.locator("form", has=page.get_by_role("button", name=button))
            for field in form.locator("input[required]:not([type=hidden])").all():
                field.fill(_FILLS.get(field.get_attribute("type") or "", "support tries"))
            with page.expect_response(lambda r: r.request.method == "POST") as posted:
                form.get_by_role("button", name=button).click()
            assert posted.value.status == 403, (href, button)
            expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
            expect(page.get_by_role("alert")).to_have_text(
                "the support role may only read (GET, HEAD)"
            )
        page.goto("/admin/audit")
        expect(page.locator("#audit")).to_be_visible()

    assert _state(deployment) == before
    with deployment.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"operator": "Sam"}).json()["data"]
    refused = [(e["method"], e["status"]) for e in audit if e["route"] != "/admin/sign-in"]
    assert refused == [("POST", 403)] * len(_FORMS)
