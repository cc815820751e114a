"""The console's upstream pool page in a real browser against the real processes and two edges:
an operator adds a key in the page (typed into a password field, never shown back) and both
edges send traffic through it within a second; the test action shows its outcome; disabled in
the page, traffic leaves it on both edges within a second; weight and models are edited; it is
removed after a confirmation. Each change is in the audit log with its reason, the key nowhere.
Each page passes axe-core in light and dark."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import console_page, make_operator, shoot
from tests.e2e.support import Deployment, open_account
from tests.e2e.upstream import APPLIED_WITHIN_S, ENV_KEY, keys_seen, pool_deployment, within

__all__ = ["pool_deployment"]

pytestmark = pytest.mark.slow

ADDED = "sk-ant-console-" + secrets.token_hex(12)


def _on_every_edge_within_a_second(sim: str, edges: list[str], customer: str, served: bool) -> None:
    """Within APPLIED_WITHIN_S of the page's answer, each edge does (not) send through ADDED."""
    changed_at = time.monotonic()
    for edge in edges:

        def settled(edge: str = edge) -> bool:
            return (ADDED in keys_seen(sim, edge, customer, 1)) == served

        within(APPLIED_WITHIN_S - (time.monotonic() - changed_at), settled)


def _submit(page: Page, form_id: str, button: str, reason: str) -> None:
    page.locator(f"#{form_id}-reason").fill(reason)
    page.get_by_role("button", name=button).click()


def test_an_operator_manages_the_upstream_pool_in_the_console(
    browser: Browser, pool_deployment: tuple[Deployment, list[str]], screenshots: Path
) -> None:
    deployment, edges = pool_deployment
    sim = deployment.env["AIAPI_UPSTREAM_URL"]
    with deployment.admin() as admin:
        _, _, customer = open_account(admin, "20.00")
    for edge in edges:
        assert keys_seen(sim, edge, customer, 2) == {ENV_KEY}
    make_operator(deployment, "Ada", "ada@ops.example", "admin")

    with console_page(browser, deployment, "ada@ops.example") as page:
        page.get_by_role("link", name="Upstream pool").click()
        expect(page.get_by_role("heading", name="Upstream pool", level=1)).to_be_visible()
        expect(page.locator("#pool tbody tr")).to_have_count(1)  # the setting's key
        expect(page.locator("#pool")).to_contain_text("...ream")

        # Added in the page (weight 1000 against 1: it takes the next turn on each edge).
        assert page.locator("#add-key").get_attribute("type") == "password"
        page.locator("#add-key").fill(ADDED)
        page.locator("#add-organization").fill("acme")
        page.locator("#add-weight").fill("1000")
        _submit(page, "add", "Add the key", "more capacity for the launch")
        expect(page.get_by_role("status")).to_contain_text("Added the key")
        _on_every_edge_within_a_second(sim, edges, customer, served=True)
        assert ADDED not in page.content() and page.locator("#add-key").input_value() == ""
        row = page.locator("#pool tbody tr", has_text="..." + ADDED[-4:])
        expect(row.locator(".state")).to_have_text("enabled")
        page.reload()  # the page was redirected to: a reload does not post the key again
        expect(row).to_contain_text("acme")
        shoot(page, screenshots, "console-upstream")

        # Its own page: the test goes through the key from an edge and says what came back.
        row.get_by_role("link").click()
        page.get_by_role("button", name="Test the key").click()
        expect(page.locator("#test-outcome")).to_have_text("ok")
        expect(page.get_by_role("heading", name="Test: it works")).to_be_visible()
        shoot(page, screenshots, "console-upstream-key")

        # Disabled in the page: both edges stop sending through it within a second.
        _submit(page, "switch", "Disable the key", "the provider asked us to pause it")
        expect(page.locator("#key-state")).to_have_text("disabled")
        _on_every_edge_within_a_second(sim, edges, customer, served=False)
        for edge in edges:
            assert keys_seen(sim, edge, customer, 5) == {ENV_KEY}

        # Weight and models.
        page.locator("#edit-weight").fill("5")
        page.locator("#edit-models").fill("claude-haiku-4-5, claude-sonnet-4-5")
        _submit(page, "edit", "Save", "only the small models")
        expect(page.locator("#key-weight")).to_have_text("5")
        expect(page.locator("#key-models")).to_have_text("claude-haiku-4-5, claude-sonnet-4-5")
        # A weight out of range is refused with the reason, nothing changed.
        page.locator("#edit-weight").evaluate("e => e.removeAttribute('max')")
        page.locator("#edit-weight").fill("5000")
        _submit(page, "edit", "Save", "too much")
        expect(page.get_by_role("alert")).to_contain_text("weight")
        expect(page.locator("#key-weight")).to_have_text("5")

        # Removed after a confirmation.
        page.get_by_role("link", name="Remove the key…").click()
        expect(page.get_by_role("heading", name="Remove the key")).to_be_visible()
        shoot(page, screenshots, "console-upstream-remove")
        _submit(page, "remove", "Remove the key", "rotated")
        expect(page.get_by_role("status")).to_contain_text("Removed the key")
        expect(page.locator("#pool tbody tr")).to_have_count(1)
        for edge in edges:
            assert keys_seen(sim, edge, customer, 3) == {ENV_KEY}

    with deployment.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"operator": "Ada"})
        assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]
    reasons = [(e["route"], e["status"], e["reason"]) for e in reversed(entries)]
    assert reasons == [
        ("/admin/upstream", 303, "more capacity for the launch"),
        ("/admin/upstream/{key_id}/test", 200, None),
        ("/admin/upstream/{key_id}/enabled", 303, "the provider asked us to pause it"),
        ("/admin/upstream/{key_id}", 303, "only the small models"),
        ("/admin/upstream/{key_id}", 400, "too much"),
        ("/admin/upstream/{key_id}/remove", 303, "rotated"),
    ]
    assert entries[-1]["summary"]["key"] == "[redacted]"
    assert ADDED not in audit.text and ADDED not in deployment.logs()
