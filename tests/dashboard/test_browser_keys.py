"""The dashboard in a real browser against the real processes (billing, accounts, edge, the
simulator upstream): sign up, create a key, copy it from the page, use it with the official SDK,
revoke it in the page and watch the edge refuse it; the same with JavaScript off."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import anthropic
import pytest
from aiapi_shared.money import format_usd
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import (
    check_accessibility,
    credit,
    my_account_id,
    opened_page,
    reload_until,
    shoot,
    sign_up_and_in,
)
from tests.e2e.conftest import closer
from tests.e2e.support import HAIKU_BASIC_INPUT_NANO, HAIKU_BASIC_OUTPUT_NANO, Deployment

__all__ = ["closer"]

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(shared_deployment: Deployment) -> Deployment:
    """Each test here signs up a customer of its own and looks at that customer's pages and
    requests only: the module's tests share one deployment."""
    return shared_deployment


def test_sign_up_create_copy_use_and_revoke_a_key(
    page: Page, deployment: Deployment, screenshots: Path, closer: contextlib.ExitStack
) -> None:
    shots = screenshots
    page.goto("/sign-up")
    shoot(page, shots, "sign-up")
    page.goto("/sign-in")
    shoot(page, shots, "sign-in")
    sign_up_and_in(page, "web@example.com")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("0.00")
    with deployment.admin() as admin:
        credit(admin, my_account_id(page), "5.00")
    page.reload()
    expect(page.locator("#balance")).to_have_text("5.00")
    # Quick start names the edge's real base URL, and the snippet's copy button copies it.
    expect(page.locator("#url-anthropic")).to_have_text(f"{deployment.edge_url}/api/proxy")
    page.locator("button[data-copy=snippet-claude-code]").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert f'ANTHROPIC_BASE_URL="{deployment.edge_url}/api/proxy"' in copied
    shoot(page, shots, "overview")

    page.get_by_role("navigation").get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key-value").inner_text()
    assert shown.startswith("sk-cc-")
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    key = page.evaluate("navigator.clipboard.readText()")
    assert key == shown
    shoot(page, shots, "keys-created", hide="#new-key-value")

    client = closer.enter_context(deployment.sdk(key))
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "[[reply: from the dashboard]]"}],
    )
    assert message.content[0].text == "from the dashboard"  # type: ignore[union-attr]
    cost = (
        message.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
        + message.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
    )
    # The overview's spend and balance move by the request's exact price.
    page.goto("/")
    reload_until(page, "#balance", format_usd(5_000_000_000 - cost))
    expect(page.locator("#spend-today")).to_have_text(format_usd(cost))

    # The page never shows the key again; the list shows its hint and when it was last used.
    page.goto("/keys")
    assert key not in page.content()
    row = page.locator("tr", has_text="laptop")
    expect(row.locator("code")).to_have_text(f"sk-cc-...{key[-4:]}")
    expect(row.locator("td").nth(3)).not_to_have_text("never")  # last used: the request above
    expect(row).to_contain_text("active")
    shoot(page, shots, "keys")

    row.get_by_role("link", name="Revoke laptop").click()
    expect(page.get_by_role("heading", name="Revoke “laptop”?")).to_be_visible()
    shoot(page, shots, "revoke")
    page.get_by_role("button", name="Revoke the key").click()
    revoked_at = time.monotonic()
    expect(page.locator("tr", has_text="laptop")).to_contain_text("revoked")
    refused = None
    while time.monotonic() - revoked_at < 1.0:
        try:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "still here?"}],
            )
        except anthropic.AuthenticationError as exc:
            refused = exc
            break
        time.sleep(0.05)
    assert refused is not None, "the edge still accepted the key a second after it was revoked"
    # The pages that say no are accessible too.
    page.goto("/keys/key_unknown/revoke")
    expect(page.get_by_role("heading", name="No such key")).to_be_visible()
    check_accessibility(page)


def test_sign_in_and_the_key_list_work_with_javascript_off(
    browser: Browser, deployment: Deployment
) -> None:
    with opened_page(browser, deployment, java_script_enabled=False) as page:
        sign_up_and_in(page, "nojs@example.com")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        # Copy buttons need the script: without it they stay hidden rather than dead.
        expect(page.locator("button[data-copy]").first).to_be_hidden()
        page.goto("/keys")
        page.get_by_label("Name").fill("server")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#new-key-value")).to_contain_text("sk-cc-")
        page.goto("/keys")
        page.get_by_role("link", name="Revoke server").click()
        page.get_by_role("button", name="Revoke the key").click()
        expect(page.locator("tr", has_text="server")).to_contain_text("revoked")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.goto("/keys")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_upgrade_to_pro_is_paid_from_the_balance(
    page: Page, deployment: Deployment, screenshots: Path
) -> None:
    sign_up_and_in(page, "pro@example.com", plan="pro")
    # A Pro sign-up lands on the plan page; with no balance the upgrade is refused.
    expect(page.get_by_role("heading", name="Plan", exact=True)).to_be_visible()
    page.get_by_role("button", name="Upgrade to Pro for 19.00 USD").click()
    expect(page.get_by_role("alert")).to_contain_text("Top up first")
    with deployment.admin() as admin:
        credit(admin, my_account_id(page), "20.00")
    page.get_by_role("button", name="Upgrade to Pro for 19.00 USD").click()
    expect(page.get_by_role("status")).to_contain_text("19.00 USD was charged")
    expect(page.get_by_role("status")).to_contain_text("now 1.00 USD")
    shoot(page, screenshots, "plan")
    page.goto("/")
    expect(page.locator("#balance")).to_have_text("1.00")
    expect(page.get_by_role("heading", name="Plan: Pro")).to_be_visible()
    page.goto("/account")
    shoot(page, screenshots, "account")
    # The billing history: the credit, then the purchase, each with the balance after it.
    page.get_by_role("navigation").get_by_role("link", name="Billing").click()
    lines = page.locator("#statement tbody tr")
    expect(lines).to_have_count(2)
    assert lines.nth(0).locator("td").nth(1).inner_text() == "Plan purchase"
    assert lines.nth(0).locator(".amount").inner_text() == "-19.00"
    assert lines.nth(0).locator(".balance").inner_text() == "1.00"
    assert lines.nth(1).locator("td").nth(1).inner_text() == "Adjustment"
    assert lines.nth(1).locator(".amount").inner_text() == "+20.00"
    assert lines.nth(1).locator(".balance").inner_text() == "20.00"
    shoot(page, screenshots, "billing")
