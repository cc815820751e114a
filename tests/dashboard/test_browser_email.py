"""The dashboard with mail on, in chromium against the real processes and a real SMTP server
(aiosmtpd): sign up, read the verification mail, follow its link, create a key; forgot the
password, follow the mailed link, choose a new one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_testkit.plugin import SpawnFn
from playwright.sync_api import Browser, Page, expect

from tests.accounts.smtp import MailServer, link_in, smtp
from tests.dashboard.conftest import PASSWORD, opened_page, shoot, sign_up_and_in
from tests.e2e.conftest import deploy
from tests.e2e.support import Deployment

__all__ = ["smtp"]  # the fixture
pytestmark = pytest.mark.slow

# What the mails' links start with: the public URL a proxy would serve; the test opens the
# same path on the process it started.
PUBLIC = "https://dashboard.example"
NEW_PASSWORD = "a brand new horse battery"


@pytest.fixture
def mailing(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
    smtp: MailServer,
) -> Iterator[Deployment]:
    env = {
        "AIAPI_SMTP_URL": smtp.url,
        "AIAPI_SMTP_FROM": "noreply@dashboard.example",
        "AIAPI_PUBLIC_DASHBOARD_URL": PUBLIC,
        "AIAPI_MAIL_POLL_S": "0.2",
    }
    with deploy(database_url, strict_nats_server, nats_login, spawn, tmp_path, extra_env=env) as d:
        yield d


def follow(page: Page, link: str) -> None:
    assert link.startswith(PUBLIC + "/"), link
    parts = urlsplit(link)
    page.goto(f"{parts.path}?{parts.query}")


def test_sign_up_verify_by_mail_then_create_a_key(
    browser: Browser, mailing: Deployment, smtp: MailServer, screenshots: Path
) -> None:
    with opened_page(browser, mailing) as page:
        sign_up_and_in(page, "verify@example.com")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        banner = page.locator("#verify-banner")
        expect(banner).to_contain_text("Please verify your email address")
        shoot(page, screenshots, "verify-banner")

        page.get_by_role("navigation").get_by_role("link", name="Keys").click()
        page.get_by_label("Name").fill("early")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator(".message.error")).to_contain_text("verify your email address first")
        expect(page.locator("#new-key-value")).to_have_count(0)
        page.get_by_role("navigation").get_by_role("link", name="Top up").click()
        expect(page.locator(".message.error")).to_contain_text("verify your email address first")

        mail = smtp.wait_for("verify@example.com", "Confirm your email address")
        follow(page, link_in(mail))
        expect(page.get_by_role("heading", name="Email verified")).to_be_visible()
        expect(page.locator("#verify-banner")).to_have_count(0)
        shoot(page, screenshots, "email-verified")
        page.get_by_role("link", name="Create an API key").click()
        page.get_by_label("Name").fill("laptop")
        page.get_by_role("button", name="Create key").click()
        assert page.locator("#new-key-value").inner_text().startswith("sk-cc-")

        # The link worked once.
        follow(page, link_in(mail))
        expect(page.get_by_role("heading", name="Verification failed")).to_be_visible()


def test_forgot_password_by_mail(
    browser: Browser, mailing: Deployment, smtp: MailServer, screenshots: Path
) -> None:
    with opened_page(browser, mailing) as page:
        sign_up_and_in(page, "forgot@example.com")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    with opened_page(browser, mailing) as page:
        page.goto("/sign-in")
        page.get_by_role("link", name="Forgot your password?").click()
        shoot(page, screenshots, "forgot-password")
        page.get_by_label("Email").fill("forgot@example.com")
        page.get_by_role("button", name="Mail me a link").click()
        expect(page.locator(".message.notice")).to_contain_text("If this email has an account")
        shoot(page, screenshots, "forgot-password-sent")

        mail = smtp.wait_for("forgot@example.com", "Reset your password")
        follow(page, link_in(mail))
        expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
        shoot(page, screenshots, "reset-password")
        page.locator("#new_password").fill(NEW_PASSWORD)
        page.get_by_label("New password again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the password").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        # The mailed link reached the address: it counts as verified.
        expect(page.locator("#verify-banner")).to_have_count(0)

        follow(page, link_in(mail))
        expect(page.locator(".message.error")).to_contain_text("invalid, used or expired")

    with opened_page(browser, mailing) as page:
        page.goto("/sign-in")
        page.get_by_label("Email").fill("forgot@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".message.error")).to_contain_text("invalid email or password")
        page.get_by_label("Password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
