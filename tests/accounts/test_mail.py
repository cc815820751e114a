"""Account mail through a real SMTP server (aiosmtpd on loopback): sign-up verification and its
resend, password reset, notices of credited deposits and low balances, and SMTP being down."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiapi_accounts.settings import AccountsSettings
from aiapi_shared.bus import Bus
from aiapi_shared.events.billing_v1 import BalanceLow, DepositCredited
from aiapi_shared.payments_api import ADDRESSES_SUBJECT
from pydantic import SecretStr, ValidationError

from tests.accounts.conftest import ADMIN, PASSWORD, Running, make_settings, respond, run_app
from tests.accounts.smtp import PASSWORD as SMTP_PASSWORD
from tests.accounts.smtp import USER as SMTP_USER
from tests.accounts.smtp import MailServer, body_of, link_in, smtp, token_in

__all__ = ["smtp"]  # the fixture

DASHBOARD = "https://dash.example"
VERIFY = "Confirm your email address"
RESET = "Reset your password"
NEW_PASSWORD = "a different horse battery"


def mail_settings(
    database_url: str, nats_url: str, smtp: MailServer, **overrides: object
) -> AccountsSettings:
    values: dict[str, object] = {
        "smtp_url": SecretStr(smtp.url),
        "smtp_from": "aiapi <noreply@dash.example>",
        "public_dashboard_url": DASHBOARD,
        "mail_poll_s": 0.2,
        "mail_retry_base_s": 0.2,
        "mail_retry_max_s": 0.5,
        **overrides,
    }
    return make_settings(database_url, nats_url, **values)


@pytest.fixture
async def mailing(
    database_url: str, nats_url: str, bus: Bus, smtp: MailServer
) -> AsyncIterator[Running]:
    async with run_app(mail_settings(database_url, nats_url, smtp), bus) as app:
        yield app


async def outbox_drained(running: Running) -> None:
    """Wait until the sender has handed every queued mail to the server (up to 30 s)."""
    assert running.service.pool is not None
    for _ in range(600):
        async with running.service.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM mail_outbox")
            row = await cur.fetchone()
        if row is not None and row[0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox never drained")


async def sign_up_in(running: Running, email: str) -> str:
    return await running.signed_in(email)


async def test_a_sign_up_verifies_its_email_before_keys_and_deposit_addresses(
    mailing: Running, smtp: MailServer, bus: Bus
) -> None:
    client = mailing.client
    csrf = await sign_up_in(mailing, "carol@example.com")
    mail = await smtp.wait_for_async("carol@example.com", VERIFY)
    assert mail["From"] == "aiapi <noreply@dash.example>"
    link = link_in(mail)
    assert link.startswith(f"{DASHBOARD}/verify-email?token=")
    assert (SMTP_USER, SMTP_PASSWORD) in smtp.logins  # logged in with the URL's credentials

    profile = (await client.get("/api/v1/account")).json()
    assert profile["email_verified"] is False
    refused = await client.post(
        "/api/v1/account/keys", json={"name": "early"}, headers={"x-csrf-token": csrf}
    )
    assert refused.status_code == 403, refused.text
    assert "verify your email address first" in refused.json()["error"]["message"]
    asked = await respond(bus, ADDRESSES_SUBJECT, lambda r: {"addresses": []})
    addresses = await client.get("/api/v1/account/deposit-addresses")
    assert addresses.status_code == 403, addresses.text
    assert asked == []  # payments was never asked to derive an address

    # A wrong token changes nothing; the mailed one verifies, once.
    wrong = await client.post("/api/v1/auth/verify-email", json={"token": "x" * 43})
    assert wrong.status_code == 401
    token = token_in(mail)
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 204
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 401

    assert (await client.get("/api/v1/account")).json()["email_verified"] is True
    created = await client.post(
        "/api/v1/account/keys", json={"name": "now"}, headers={"x-csrf-token": csrf}
    )
    assert created.status_code == 201, created.text


async def test_resend_replaces_the_link_and_is_rate_limited(
    mailing: Running, smtp: MailServer
) -> None:
    client = mailing.client
    csrf = await sign_up_in(mailing, "dan@example.com")
    first = await smtp.wait_for_async("dan@example.com", VERIFY)
    resent = await client.post("/api/v1/account/verify-email", headers={"x-csrf-token": csrf})
    assert resent.status_code == 202, resent.text
    second = await smtp.wait_for_async("dan@example.com", VERIFY, count=2)
    assert token_in(second) != token_in(first)
    stale = await client.post("/api/v1/auth/verify-email", json={"token": token_in(first)})
    assert stale.status_code == 401  # the newer link supersedes the older one
    for _ in range(2):  # the default budget is 3 per hour
        ok = await client.post("/api/v1/account/verify-email", headers={"x-csrf-token": csrf})
        assert ok.status_code == 202
    limited = await client.post("/api/v1/account/verify-email", headers={"x-csrf-token": csrf})
    assert limited.status_code == 429
    assert "retry-after" in limited.headers
    fresh = await smtp.wait_for_async("dan@example.com", VERIFY, count=4)
    ok = await client.post("/api/v1/auth/verify-email", json={"token": token_in(fresh)})
    assert ok.status_code == 204
    done = await client.post("/api/v1/account/verify-email", headers={"x-csrf-token": csrf})
    assert done.status_code == 409


async def test_operator_accounts_need_no_verification(mailing: Running) -> None:
    account_id = await mailing.new_account("erin@example.com")
    invited = await mailing.admin.post(
        f"/admin/v1/accounts/{account_id}/invitations", headers=ADMIN
    )
    assert invited.status_code == 201, invited.text
    signed = await mailing.client.post(
        "/api/v1/auth/accept-invitation",
        json={"token": invited.json()["token"], "password": PASSWORD},
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["account"]["email_verified"] is True
    created = await mailing.client.post(
        "/api/v1/account/keys",
        json={"name": "ops"},
        headers={"x-csrf-token": signed.json()["csrf_token"]},
    )
    assert created.status_code == 201, created.text


async def test_the_operator_can_turn_the_requirement_off(
    database_url: str, nats_url: str, bus: Bus, smtp: MailServer
) -> None:
    settings = mail_settings(database_url, nats_url, smtp, require_email_verification=False)
    async with run_app(settings, bus) as app:
        csrf = await app.signed_in("fay@example.com")
        created = await app.client.post(
            "/api/v1/account/keys", json={"name": "k"}, headers={"x-csrf-token": csrf}
        )
        assert created.status_code == 201, created.text
    assert smtp.to("fay@example.com") == []  # nothing to verify, nothing mailed


async def test_password_reset_by_mail(mailing: Running, smtp: MailServer) -> None:
    client = mailing.client
    await sign_up_in(mailing, "gus@example.com")
    old_session = dict(client.cookies.items())
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": "nobody@example.com"})
    known = await client.post("/api/v1/auth/password-reset", json={"email": "GUS@example.com"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()  # no way to learn which emails have accounts
    mail = await smtp.wait_for_async("gus@example.com", RESET)
    assert link_in(mail).startswith(f"{DASHBOARD}/reset-password?token=")
    assert smtp.to("nobody@example.com") == []

    token = token_in(mail)
    short = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": "short"}
    )
    assert short.status_code == 400  # the token is not used up by a refused password
    client.cookies.clear()
    done = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    reused = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reused.status_code == 401

    # The session from before the reset is over; the old password no longer works.
    client.cookies.clear()
    client.cookies.update(old_session)
    assert (await client.get("/api/v1/account")).status_code == 401
    client.cookies.clear()
    old = await client.post(
        "/api/v1/auth/sign-in", json={"email": "gus@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/v1/auth/sign-in", json={"email": "gus@example.com", "password": NEW_PASSWORD}
    )
    assert new.status_code == 200


async def test_password_reset_requests_are_limited_per_email(
    mailing: Running, smtp: MailServer
) -> None:
    await sign_up_in(mailing, "hal@example.com")
    for _ in range(5):
        asked = await mailing.client.post(
            "/api/v1/auth/password-reset", json={"email": "hal@example.com"}
        )
        assert asked.status_code == 202  # the same answer, mailed or not
    await smtp.wait_for_async("hal@example.com", RESET, count=3)
    # Beyond the hourly budget nothing more was queued: once the outbox is empty, three it is.
    await outbox_drained(mailing)
    assert len([m for m in smtp.to("hal@example.com") if m["Subject"] == RESET]) == 3


async def test_notices_of_a_credited_deposit_and_a_low_balance(
    mailing: Running, smtp: MailServer, bus: Bus
) -> None:
    account_id = await mailing.new_account("ida@example.com")
    await bus.publish_event(
        DepositCredited(account_id=account_id, deposit_id="dep_1", amount=12_500_000_000)
    )
    credited = await smtp.wait_for_async("ida@example.com", "Deposit credited")
    assert "12.50 USD" in body_of(credited)
    await bus.publish_event(
        BalanceLow(account_id=account_id, available=750_000_000, threshold=1_000_000_000)
    )
    low = await smtp.wait_for_async("ida@example.com", "Your balance is running low")
    assert "0.75 USD" in body_of(low)
    assert f"{DASHBOARD}/top-up" in body_of(low)


async def test_smtp_down_the_request_succeeds_and_the_mail_goes_out_later(
    mailing: Running, smtp: MailServer
) -> None:
    smtp.stop()
    up = await mailing.client.post(
        "/api/v1/auth/sign-up", json={"email": "jo@example.com", "password": PASSWORD}
    )
    assert up.status_code == 202
    # The sender has tried (and failed) at least once while the server was down.
    async with mailing.service.pool.connection() as conn:  # type: ignore[union-attr]
        for _ in range(200):
            cur = await conn.execute("SELECT attempts, last_error FROM mail_outbox")
            row = await cur.fetchone()
            if row is not None and row[0] >= 1 and row[1]:
                break
            await conn.commit()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the sender never tried")
    assert smtp.to("jo@example.com") == []
    smtp.start()
    mail = await smtp.wait_for_async("jo@example.com", VERIFY)
    assert link_in(mail).startswith(DASHBOARD)


def test_mail_settings_are_checked_without_showing_the_password(
    database_url: str, nats_url: str
) -> None:
    with pytest.raises(ValidationError) as missing_from:
        make_settings(
            database_url,
            nats_url,
            smtp_url=SecretStr("smtp://u:hunter2-secret@mail.example:587"),
            public_dashboard_url=DASHBOARD,
        )
    assert "AIAPI_SMTP_FROM" in str(missing_from.value)
    assert "hunter2-secret" not in str(missing_from.value)
    with pytest.raises(ValidationError) as bad_scheme:
        make_settings(
            database_url,
            nats_url,
            smtp_url=SecretStr("http://u:hunter2-secret@mail.example"),
            smtp_from="a@b.example",
            public_dashboard_url=DASHBOARD,
        )
    assert "smtp://" in str(bad_scheme.value)
    assert "hunter2-secret" not in str(bad_scheme.value)
    with pytest.raises(ValidationError):
        make_settings(database_url, nats_url, require_email_verification=True)
    off = make_settings(database_url, nats_url)
    assert not off.mail_enabled and not off.verification_required


def test_the_service_refuses_incomplete_mail_settings_naming_them_not_the_password(
    database_url: str, nats_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAPI_")} | {
        "AIAPI_DATABASE_URL": database_url,
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_ADMIN_TOKEN": ADMIN["authorization"].removeprefix("Bearer "),
        "AIAPI_SMTP_URL": "smtps://mailer:hunter2-secret@mail.example",
        "AIAPI_PUBLIC_DASHBOARD_URL": DASHBOARD,
    }
    done = subprocess.run(
        [sys.executable, "-m", "aiapi_accounts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "AIAPI_SMTP_FROM is required" in done.stderr
    assert "hunter2-secret" not in done.stderr + done.stdout
