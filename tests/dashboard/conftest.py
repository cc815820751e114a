"""Fixtures of the dashboard tests: the real processes (from the e2e tests), a real chromium,
and helpers to fill the pages' forms and take the screenshots for docs/dashboard.md."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiapi_testkit.browser import browser
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import deployment
from tests.e2e.support import Deployment

__all__ = ["browser", "deployment"]

PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/dashboard/ when AIAPI_UPDATE_SCREENSHOTS=1, else a temp dir."""
    if os.environ.get("AIAPI_UPDATE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "dashboard"
    else:
        target = tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


def shoot(page: Page, directory: Path, name: str, *, hide: str | None = None) -> None:
    """A full-page screenshot at desktop width and one at phone width; ``hide`` names an element
    painted over (a key must not end up in the repository, even a dead test key)."""
    size = page.viewport_size or DESKTOP
    mask = [page.locator(hide)] if hide else []
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True, mask=mask)
    page.set_viewport_size(size)


@pytest.fixture
def browser_context(browser: Browser, deployment: Deployment) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=deployment.accounts_url, viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.accounts_url)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    return browser_context.new_page()


def sign_up_and_in(page: Page, email: str, plan: str = "basic") -> None:
    page.goto("/sign-up")
    page.get_by_label("Email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.locator(f"input[name=plan][value={plan}]").check()
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def my_account_id(page: Page) -> str:
    """The signed-in account's id, read through the page's own session."""
    answer = page.request.get("/api/v1/account")
    assert answer.ok, answer.text()
    account_id: str = answer.json()["id"]
    return account_id


def credit(admin: httpx.Client, account_id: str, amount_usd: str) -> None:
    answer = admin.post(
        f"/admin/v1/accounts/{account_id}/adjustments",
        json={"amount_usd": amount_usd, "reason": "dashboard test"},
        headers={"Idempotency-Key": f"dash-{account_id}-{amount_usd}"},
    )
    assert answer.status_code == 201, answer.text


HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def reload_until(page: Page, selector: str, text: str, timeout_s: float = 15.0) -> None:
    """Reload the page until ``selector`` shows ``text`` (for what settles asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while page.locator(selector).inner_text().strip() != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} shows {page.locator(selector).inner_text()!r}")
        time.sleep(0.2)
        page.reload()
