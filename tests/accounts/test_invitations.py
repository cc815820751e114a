"""Invitations: the owner of an operator-made account sets a password with a one-time token and
is signed in; bad tokens (unknown, reused, expired, superseded) all get the same 401, attempts
are throttled per client address, and the token never reaches the logs."""

from __future__ import annotations

import asyncio
import json

import httpx
import psycopg
import pytest
from aiapi_cli.admin import admin_main
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    PASSWORD,
    Running,
    make_settings,
    run_app,
)
from tests.accounts.test_process import ARGV, admin_url, ready_url, service_env

ACCEPT = "/api/v1/auth/accept-invitation"


async def invite(running: Running, account_id: str) -> str:
    answer = await running.admin.post(f"/admin/v1/accounts/{account_id}/invitations", headers=ADMIN)
    assert answer.status_code == 201, answer.text
    assert answer.json()["expires_at"]
    token: str = answer.json()["token"]
    return token


async def test_an_invited_owner_sets_a_password_and_is_signed_in(running: Running) -> None:
    account_id = await running.new_account("owner@example.com")
    refused = await running.client.post(
        "/api/v1/auth/sign-in", json={"email": "owner@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401  # no password yet
    token = await invite(running, account_id)
    assert len(token) >= 40
    accepted = await running.client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert set(body) == {"account", "session_id", "csrf_token", "expires_at"}
    assert body["account"]["id"] == account_id
    cookies = accepted.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("aiapi_session="))
    assert "HttpOnly" in session
    assert "Secure" in session
    assert any(c.startswith("aiapi_csrf=") and body["csrf_token"] in c for c in cookies)
    profile = await running.client.get("/api/v1/account")
    assert profile.json()["id"] == account_id
    # The new password works for a plain sign-in too.
    async with httpx.AsyncClient(
        transport=running.client._transport, base_url="https://accounts.test"
    ) as other:
        again = await other.post(
            "/api/v1/auth/sign-in", json={"email": "owner@example.com", "password": PASSWORD}
        )
        assert again.status_code == 200


async def test_accepting_ends_every_other_session(running: Running) -> None:
    account_id = await running.new_account("owner@example.com")
    await running.client.post(
        ACCEPT, json={"token": await invite(running, account_id), "password": PASSWORD}
    )
    old_cookie = running.client.cookies["aiapi_session"]
    running.client.cookies.clear()
    second = await running.client.post(
        ACCEPT, json={"token": await invite(running, account_id), "password": "a new password!"}
    )
    assert second.status_code == 200
    running.client.cookies.clear()
    running.client.cookies["aiapi_session"] = old_cookie
    assert (await running.client.get("/api/v1/account")).status_code == 401


async def test_unknown_account_is_404(running: Running) -> None:
    answer = await running.admin.post("/admin/v1/accounts/acc_missing/invitations", headers=ADMIN)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"
    no_token = await running.admin.post("/admin/v1/accounts/acc_missing/invitations")
    assert no_token.status_code == 401


async def test_reused_superseded_and_unknown_tokens_get_the_same_401(running: Running) -> None:
    account_id = await running.new_account("owner@example.com")
    used = await invite(running, account_id)
    ok = await running.client.post(ACCEPT, json={"token": used, "password": PASSWORD})
    assert ok.status_code == 200
    superseded = await invite(running, account_id)
    await invite(running, account_id)  # the newest one supersedes the one before
    answers = [
        await running.client.post(ACCEPT, json={"token": token, "password": PASSWORD})
        for token in (used, superseded, "not-a-token")
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1
    assert answers[0].json()["error"]["type"] == "authentication_error"


async def test_an_expired_token_is_refused(running: Running, database_url: str) -> None:
    account_id = await running.new_account("owner@example.com")
    token = await invite(running, account_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE accounts.invitations SET expires_at = now() - interval '1 second'")
    late = await running.client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert late.status_code == 401
    assert late.json()["error"]["message"] == "invalid or expired invitation"


async def test_the_ttl_setting_sets_the_expiry(database_url: str, nats_url: str, bus: Bus) -> None:
    settings = make_settings(database_url, nats_url, invitation_ttl_s=60)
    async with run_app(settings, bus) as app:
        account_id = await app.new_account("owner@example.com")
        await invite(app, account_id)
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM expires_at - created_at) FROM accounts.invitations"
            ).fetchone()
        assert row is not None
        assert 59 <= float(row[0]) <= 61


async def test_a_weak_password_is_400_and_keeps_the_token(running: Running) -> None:
    account_id = await running.new_account("owner@example.com")
    token = await invite(running, account_id)
    weak = await running.client.post(ACCEPT, json={"token": token, "password": "short"})
    assert weak.status_code == 400
    assert weak.json()["error"]["type"] == "invalid_request_error"
    assert token not in weak.text
    ok = await running.client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert ok.status_code == 200


async def test_bad_tokens_are_throttled_per_address(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(
        database_url,
        nats_url,
        sign_in_free_failures_per_ip=3,
        sign_in_base_delay_s=600,
        sign_in_max_delay_per_ip_s=600,
    )
    async with run_app(settings, bus) as app:
        account_id = await app.new_account("owner@example.com")
        token = await invite(app, account_id)
        for n in range(3):
            bad = await app.client.post(ACCEPT, json={"token": f"guess-{n}", "password": PASSWORD})
            assert bad.status_code == 401
        blocked = await app.client.post(ACCEPT, json={"token": token, "password": PASSWORD})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        # The good token was not spent by the refused attempt.
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM accounts.invitations WHERE used_at IS NULL")
            assert row.fetchone() == (1,)


async def test_openapi_lists_both_routes(running: Running) -> None:
    operator = (await running.admin.get("/openapi.json")).json()["paths"]
    assert "post" in operator["/admin/v1/accounts/{id}/invitations"]
    assert ACCEPT not in operator
    customer = (await running.client.get("/openapi.json")).json()["paths"]
    assert "post" in customer[ACCEPT]
    assert not [path for path in customer if path.startswith("/admin/")]


async def test_cli_invite_and_the_token_never_reaches_the_logs(
    database_url: str, nats_url: str, spawn: SpawnFn, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = service_env(database_url, nats_url, port)
    proc = spawn(ARGV, env=service, health_url=ready_url(service), name="accounts")
    env = {"AIAPI_ADMIN_URL": admin_url(service), "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}
    async with httpx.AsyncClient(base_url=base) as client:
        account = (
            await client.post(
                admin_url(service) + "/admin/v1/accounts",
                json={"email": "o@example.com"},
                headers=ADMIN,
            )
        ).json()
        code = await asyncio.to_thread(
            admin_main, ["accounts", "invite", account["id"]], environ=env
        )
        assert code == 0
        out = capsys.readouterr().out
        token = json.loads(out)["token"]
        accepted = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
        assert accepted.status_code == 200
        reused = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
        assert reused.status_code == 401
    assert proc.stop() == 0
    log = proc.log_text()
    assert "accounts service started" in log
    for secret in (token, PASSWORD, accepted.json()["csrf_token"]):
        assert secret not in log
