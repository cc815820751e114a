"""The operator console's sign-in in a real browser against the real processes: redirected to
sign-in, a wrong password shown again, signed in to the shell, a support operator's page says
so, signed out; each page passes axe-core in light and dark. The console shares the dashboard's
stylesheet (the same look)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.conftest import PASSWORD, axe_source, check_accessibility, shoot
from tests.e2e.support import Deployment

pytestmark = pytest.mark.slow


def _operator(deployment: Deployment, name: str, email: str, role: str) -> None:
    with deployment.admin() as admin:
        made = admin.post(
            "/admin/v1/operators",
            json={"name": name, "email": email, "role": role, "password": PASSWORD},
        )
        assert made.status_code == 201, made.text


def test_an_operator_signs_in_to_the_console_and_out(
    browser: Browser, deployment: Deployment, screenshots: Path
) -> None:
    _operator(deployment, "Ada", "ada@ops.example", "admin")
    _operator(deployment, "Sam", "sam@ops.example", "support")
    context = browser.new_context(base_url=deployment.admin_url)
    context.add_init_script(script=axe_source())
    try:
        page = context.new_page()
        page.goto("/admin/")
        expect(page.get_by_role("heading", name="Operator sign-in")).to_be_visible()
        assert page.url.endswith("/admin/sign-in?next=/admin/")
        shoot(page, screenshots, "console-sign-in")
        page.get_by_label("Email").fill("ada@ops.example")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("invalid email or password")
        check_accessibility(page)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Operator console")).to_be_visible()
        expect(page.locator("#operator-name")).to_have_text("Ada")
        expect(page.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
        shoot(page, screenshots, "console-home")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Operator sign-in")).to_be_visible()
        page.goto("/admin/")
        expect(page.get_by_role("heading", name="Operator sign-in")).to_be_visible()

        page.get_by_label("Email").fill("sam@ops.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#operator-role")).to_have_text("support")
        check_accessibility(page)
        # A support session's write through the API, with the session's CSRF token, is refused
        # for the role.
        csrf = page.locator("input[name=csrf_token]").first.input_value()
        refused = page.request.post(
            "/admin/v1/accounts", data={"email": "x@example.com"}, headers={"x-csrf-token": csrf}
        )
        assert refused.status == 403
        assert "support role may only read" in refused.json()["error"]["message"]
    finally:
        context.close()
