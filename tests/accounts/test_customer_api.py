"""The customer API (/api/v1): sign-up and sign-in without account enumeration, throttled
sign-in, sessions and CSRF, password change, keys, plan upgrade through billing, balances and
usage from billing, deposits from payments."""

from __future__ import annotations

from typing import Any

import httpx
from aiapi_shared import apikeys, billing_api, payments_api

from tests.accounts.conftest import (
    ADMIN,
    PASSWORD,
    Running,
    make_settings,
    respond,
    run_app,
)

CREDS = {"email": "bob@example.com", "password": PASSWORD}


def csrf(token: str) -> dict[str, str]:
    return {"x-csrf-token": token}


async def test_sign_up_then_sign_in_sets_secure_httponly_cookies(running: Running) -> None:
    up = await running.client.post("/api/v1/auth/sign-up", json=CREDS)
    assert up.status_code == 202
    inside = await running.client.post("/api/v1/auth/sign-in", json=CREDS)
    assert inside.status_code == 200
    body = inside.json()
    assert body["account"]["email"] == "bob@example.com"
    assert body["account"]["plan"] == "basic"
    cookies = inside.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("aiapi_session="))
    assert "HttpOnly" in session
    assert "Secure" in session
    assert "SameSite=lax" in session
    readable = next(c for c in cookies if c.startswith("aiapi_csrf="))
    assert "HttpOnly" not in readable
    assert body["csrf_token"] in readable
    profile = await running.client.get("/api/v1/account")
    assert profile.status_code == 200
    assert profile.json()["id"] == body["account"]["id"]


async def test_cookie_secure_flag_follows_the_setting(
    database_url: str, nats_url: str, bus: Any
) -> None:
    settings = make_settings(database_url, nats_url, cookie_secure=False)
    async with run_app(settings, bus) as app:
        await app.client.post("/api/v1/auth/sign-up", json=CREDS)
        inside = await app.client.post("/api/v1/auth/sign-in", json=CREDS)
        assert all("Secure" not in c for c in inside.headers.get_list("set-cookie"))


async def test_sign_up_answers_the_same_for_a_taken_email(running: Running) -> None:
    first = await running.client.post("/api/v1/auth/sign-up", json=CREDS)
    again = await running.client.post(
        "/api/v1/auth/sign-up", json={"email": "BOB@example.com", "password": "another password!"}
    )
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    # ...and the second sign-up changed nothing: the first password still works.
    inside = await running.client.post("/api/v1/auth/sign-in", json=CREDS)
    assert inside.status_code == 200


async def test_sign_up_refuses_bad_emails_and_short_passwords(running: Running) -> None:
    for body in (
        {"email": "nope", "password": PASSWORD},
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com"},
    ):
        answer = await running.client.post("/api/v1/auth/sign-up", json=body)
        assert answer.status_code == 400, body
        assert PASSWORD not in answer.text


async def test_sign_in_failures_do_not_tell_unknown_emails_from_wrong_passwords(
    running: Running,
) -> None:
    await running.client.post("/api/v1/auth/sign-up", json=CREDS)
    operator_made = await running.new_account("ops-made@example.com")
    assert operator_made
    answers = [
        await running.client.post(
            "/api/v1/auth/sign-in", json={"email": email, "password": password}
        )
        for email, password in (
            ("bob@example.com", "wrong password here"),
            ("nobody@example.com", PASSWORD),
            ("ops-made@example.com", PASSWORD),  # exists, has no password yet
        )
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1
    assert answers[0].json()["error"] == {
        "type": "authentication_error",
        "message": "invalid email or password",
    }


async def test_sign_in_is_throttled_per_email_and_success_resets_it(
    database_url: str, nats_url: str, bus: Any
) -> None:
    settings = make_settings(
        database_url,
        nats_url,
        sign_in_free_failures_per_email=3,
        sign_in_base_delay_s=600,
        sign_in_max_delay_per_email_s=600,
    )
    async with run_app(settings, bus) as app:
        await app.client.post("/api/v1/auth/sign-up", json=CREDS)
        wrong = {"email": "bob@example.com", "password": "wrong password here"}
        for _ in range(2):
            assert (await app.client.post("/api/v1/auth/sign-in", json=wrong)).status_code == 401
        assert (await app.client.post("/api/v1/auth/sign-in", json=CREDS)).status_code == 200
        for _ in range(3):
            assert (await app.client.post("/api/v1/auth/sign-in", json=wrong)).status_code == 401
        blocked = await app.client.post("/api/v1/auth/sign-in", json=CREDS)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["type"] == "rate_limit_error"
        assert 0 < int(blocked.headers["retry-after"]) <= settings.sign_in_max_delay_per_email_s
        # An unknown email is throttled the same way (no enumeration through the limiter).
        ghost = {"email": "ghost@example.com", "password": "wrong password here"}
        codes = [
            (await app.client.post("/api/v1/auth/sign-in", json=ghost)).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]


async def test_sign_in_is_throttled_per_client_address(
    database_url: str, nats_url: str, bus: Any
) -> None:
    settings = make_settings(
        database_url,
        nats_url,
        sign_in_free_failures_per_ip=4,
        sign_in_base_delay_s=600,
        sign_in_max_delay_per_ip_s=600,
    )
    async with run_app(settings, bus) as app:
        codes = [
            (
                await app.client.post(
                    "/api/v1/auth/sign-in",
                    json={"email": f"user{i}@example.com", "password": "wrong password here"},
                )
            ).status_code
            for i in range(5)
        ]
        assert codes == [401, 401, 401, 401, 429]


async def test_customer_routes_need_a_session(running: Running) -> None:
    for method, path in (
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/account/keys"),
        ("POST", "/api/v1/account/keys"),
        ("GET", "/api/v1/account/balance"),
        ("GET", "/api/v1/account/deposits"),
        ("POST", "/api/v1/auth/sign-out"),
    ):
        answer = await running.client.request(method, path, json={"name": "x"})
        assert answer.status_code == 401, path
    running.client.cookies.set("aiapi_session", "forged", domain="accounts.test")
    assert (await running.client.get("/api/v1/account")).status_code == 401


async def test_cookie_authenticated_writes_need_the_csrf_token(running: Running) -> None:
    token = await running.signed_in()
    for headers in ({}, csrf("wrong"), csrf("")):
        answer = await running.client.post(
            "/api/v1/account/keys", json={"name": "x"}, headers=headers
        )
        assert answer.status_code == 403
        assert answer.json()["error"]["type"] == "permission_error"
    assert (await running.client.get("/api/v1/account/keys")).json() == []
    ok = await running.client.post("/api/v1/account/keys", json={"name": "x"}, headers=csrf(token))
    assert ok.status_code == 201


async def test_a_token_of_another_session_does_not_pass_csrf(running: Running) -> None:
    mine = await running.signed_in("one@example.com")
    other = httpx.AsyncClient(transport=running.client._transport, base_url="https://accounts.test")
    async with other:
        await other.post(
            "/api/v1/auth/sign-up", json={"email": "two@example.com", "password": PASSWORD}
        )
        theirs = (
            await other.post(
                "/api/v1/auth/sign-in", json={"email": "two@example.com", "password": PASSWORD}
            )
        ).json()["csrf_token"]
    assert theirs != mine
    answer = await running.client.post(
        "/api/v1/account/keys", json={"name": "x"}, headers=csrf(theirs)
    )
    assert answer.status_code == 403


async def test_keys_lifecycle_through_the_customer_api(running: Running) -> None:
    token = await running.signed_in()
    created = await running.client.post(
        "/api/v1/account/keys", json={"name": "laptop"}, headers=csrf(token)
    )
    assert created.status_code == 201
    key = created.json()
    assert apikeys.is_well_formed(key["key"])
    listing = await running.client.get("/api/v1/account/keys")
    assert key["key"] not in listing.text
    (entry,) = listing.json()
    assert entry["id"] == key["id"]
    assert entry["status"] == "active"
    assert entry["hint"] == f"sk-cc-...{key['key'][-4:]}"
    assert entry["last_used_at"] is None
    bad = await running.client.post("/api/v1/account/keys", json={"name": ""}, headers=csrf(token))
    assert bad.status_code == 400
    url = f"/api/v1/account/keys/{key['id']}"
    assert (await running.client.delete(url)).status_code == 403  # no CSRF token
    assert (await running.client.delete(url, headers=csrf(token))).status_code == 204
    assert (await running.client.get("/api/v1/account/keys")).json()[0]["status"] == "revoked"
    missing = await running.client.delete("/api/v1/account/keys/key_nope", headers=csrf(token))
    assert missing.status_code == 404


async def test_customers_cannot_touch_other_accounts_keys(running: Running) -> None:
    other_id = await running.new_account("other@example.com")
    other_key = await running.new_key(other_id)
    token = await running.signed_in()
    answer = await running.client.delete(
        f"/api/v1/account/keys/{other_key['id']}", headers=csrf(token)
    )
    assert answer.status_code == 404


async def test_a_suspended_account_cannot_create_keys_or_upgrade(running: Running) -> None:
    token = await running.signed_in()
    account_id = (await running.client.get("/api/v1/account")).json()["id"]
    await running.admin.patch(
        f"/admin/v1/accounts/{account_id}", json={"status": "suspended"}, headers=ADMIN
    )
    keys = await running.client.post(
        "/api/v1/account/keys", json={"name": "x"}, headers=csrf(token)
    )
    assert keys.status_code == 403
    upgrade = await running.client.post(
        "/api/v1/account/plan", json={"plan": "pro"}, headers=csrf(token)
    )
    assert upgrade.status_code == 403


async def test_sign_out_ends_the_session(running: Running) -> None:
    token = await running.signed_in()
    assert (await running.client.post("/api/v1/auth/sign-out")).status_code == 403
    out = await running.client.post("/api/v1/auth/sign-out", headers=csrf(token))
    assert out.status_code == 204
    old = out.headers.get_list("set-cookie")
    assert any(c.startswith("aiapi_session=") and "Max-Age=0" in c for c in old)
    assert (await running.client.get("/api/v1/account")).status_code == 401


async def test_sessions_are_listed_and_revocable(running: Running) -> None:
    token = await running.signed_in()
    second = httpx.AsyncClient(
        transport=running.client._transport, base_url="https://accounts.test"
    )
    async with second:
        await second.post("/api/v1/auth/sign-in", json=CREDS)
        listed = (await running.client.get("/api/v1/account/sessions")).json()
        assert len(listed) == 2
        assert sum(s["current"] for s in listed) == 1
        other = next(s for s in listed if not s["current"])
        url = f"/api/v1/account/sessions/{other['id']}"
        assert (await running.client.delete(url, headers=csrf(token))).status_code == 204
        assert (await second.get("/api/v1/account")).status_code == 401
        assert (await running.client.delete(url, headers=csrf(token))).status_code == 404
    assert (await running.client.get("/api/v1/account")).status_code == 200


async def test_password_change_needs_the_current_password_and_ends_other_sessions(
    running: Running,
) -> None:
    token = await running.signed_in()
    second = httpx.AsyncClient(
        transport=running.client._transport, base_url="https://accounts.test"
    )
    async with second:
        await second.post("/api/v1/auth/sign-in", json=CREDS)
        url = "/api/v1/account/password"
        new = "a brand new passphrase"
        wrong = await running.client.post(
            url,
            json={"current_password": "not it at all", "new_password": new},
            headers=csrf(token),
        )
        assert wrong.status_code == 400
        short = await running.client.post(
            url, json={"current_password": PASSWORD, "new_password": "short"}, headers=csrf(token)
        )
        assert short.status_code == 400
        no_csrf = await running.client.post(
            url, json={"current_password": PASSWORD, "new_password": new}
        )
        assert no_csrf.status_code == 403
        ok = await running.client.post(
            url, json={"current_password": PASSWORD, "new_password": new}, headers=csrf(token)
        )
        assert ok.status_code == 204
        assert (await second.get("/api/v1/account")).status_code == 401
    assert (await running.client.get("/api/v1/account")).status_code == 200
    old = await running.client.post("/api/v1/auth/sign-in", json=CREDS)
    assert old.status_code == 401
    fresh = await running.client.post(
        "/api/v1/auth/sign-in", json={"email": CREDS["email"], "password": new}
    )
    assert fresh.status_code == 200


async def test_plans_are_listed_with_prices_as_strings(running: Running) -> None:
    plans = (await running.client.get("/api/v1/plans")).json()
    by_id = {p["id"]: p for p in plans}
    assert by_id["pro"]["price_usd"] == "19.00"
    assert by_id["basic"]["requests_per_minute"] == 200


def purchase_reply(request: dict[str, Any]) -> dict[str, Any]:
    return {"plan": "pro", "price": "19.00", "balance": "31.00", "already_owned": False}


async def test_upgrade_to_pro_is_paid_through_billing(running: Running) -> None:
    token = await running.signed_in()
    seen = await respond(running.bus, billing_api.PURCHASE_PLAN_SUBJECT, purchase_reply)
    answer = await running.client.post(
        "/api/v1/account/plan", json={"plan": "pro"}, headers=csrf(token)
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["account"]["plan"], body["price_usd"], body["balance_usd"]) == (
        "pro",
        "19.00",
        "31.00",
    )
    assert seen == [{"account_id": body["account"]["id"], "plan": "pro"}]
    assert (await running.client.get("/api/v1/account")).json()["plan"] == "pro"


async def test_upgrade_errors(running: Running) -> None:
    token = await running.signed_in()
    url = "/api/v1/account/plan"
    assert (
        await running.client.post(url, json={"plan": "gold"}, headers=csrf(token))
    ).status_code == 400  # no such plan offered
    assert (await running.client.post(url, json={"plan": "pro"})).status_code == 403
    down = await running.client.post(url, json={"plan": "pro"}, headers=csrf(token))
    assert down.status_code == 503
    refusal = billing_api.ApiError(
        error="insufficient_balance", message="19.00 USD needed", status=402
    )
    await respond(running.bus, billing_api.PURCHASE_PLAN_SUBJECT, lambda _: refusal)
    poor = await running.client.post(url, json={"plan": "pro"}, headers=csrf(token))
    assert poor.status_code == 402
    assert poor.json()["error"]["type"] == "insufficient_balance"
    assert (await running.client.get("/api/v1/account")).json()["plan"] == "basic"


async def test_balance_ledger_and_usage_come_from_billing(running: Running) -> None:
    await running.signed_in()
    await respond(
        running.bus,
        billing_api.ACCOUNT_SUBJECT,
        lambda r: {
            "account_id": r["account_id"],
            "balance": "5.00",
            "available": "4.00",
            "open_holds": "1.00",
            "version": 1,
        },
    )
    entry = {
        "id": 7,
        "kind": "usage",
        "amount": "-0.01",
        "reference": "req_1",
        "created_at": "2026-11-27T12:00:00Z",
    }
    ledger_seen = await respond(
        running.bus, billing_api.LEDGER_SUBJECT, lambda _: {"entries": [entry]}
    )
    row = {
        "day": "2026-11-27",
        "model": "claude-haiku-4-5",
        "requests": 2,
        "usage": {"input_tokens": 10},
        "cost": "0.02",
    }
    usage_seen = await respond(
        running.bus, billing_api.DAILY_USAGE_SUBJECT, lambda _: {"rows": [row]}
    )
    balance = await running.client.get("/api/v1/account/balance")
    assert balance.json() == {"balance_usd": "5.00", "available_usd": "4.00"}
    ledger = await running.client.get("/api/v1/account/ledger?limit=10&before_id=99")
    assert ledger.json()["entries"][0]["amount"] == "-0.01"
    assert (ledger_seen[0]["limit"], ledger_seen[0]["before_id"]) == (10, 99)
    usage = await running.client.get("/api/v1/account/usage?days=7")
    assert usage.json()["rows"][0]["cost"] == "0.02"
    assert usage_seen[0]["days"] == 7
    for bad in (
        "/api/v1/account/ledger?limit=0",
        "/api/v1/account/ledger?limit=x",
        "/api/v1/account/usage?days=400",
    ):
        assert (await running.client.get(bad)).status_code == 400, bad


async def test_billing_reads_are_503_while_billing_is_down(running: Running) -> None:
    await running.signed_in()
    for path in ("balance", "ledger", "usage"):
        answer = await running.client.get(f"/api/v1/account/{path}")
        assert answer.status_code == 503, path


async def test_deposits_for_customers_are_503_while_payments_is_away_then_listed(
    running: Running,
) -> None:
    await running.signed_in()
    assert (await running.client.get("/api/v1/account/deposit-addresses")).status_code == 503
    assert (await running.client.get("/api/v1/account/deposits")).status_code == 503
    address = {"asset": "ETH", "network": "ethereum", "address": "0x" + "ab" * 20}
    await respond(running.bus, payments_api.ADDRESSES_SUBJECT, lambda _: {"addresses": [address]})
    assert (await running.client.get("/api/v1/account/deposit-addresses")).json() == [address]


async def test_pruning_keeps_live_sessions_and_recent_failures(running: Running) -> None:
    await running.signed_in()
    await running.client.post(
        "/api/v1/auth/sign-in", json={"email": CREDS["email"], "password": "wrong password here"}
    )
    assert running.service.ctx is not None
    assert running.service.pool is not None
    account_id = (await running.client.get("/api/v1/account")).json()["id"]
    async with running.service.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO sessions (id, token_hash, account_id, csrf_token, expires_at)"
            " VALUES ('ses_old', 'h', %s, 'c', now() - interval '2 days')",
            (account_id,),
        )
    await running.service.ctx.accounts.prune()
    async with running.service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM sessions WHERE id = 'ses_old'")
        assert (await cur.fetchone()) == (0,)
        cur = await conn.execute("SELECT scope FROM sign_in_attempts ORDER BY scope")
        # The sign-up's address, the sign-ins' address and the failed sign-in's email: all recent.
        scopes = [row[0] for row in await cur.fetchall()]
        assert [s.split(":")[0] for s in scopes] == ["email", "ip", "sign-up"]
    assert (await running.client.get("/api/v1/account")).status_code == 200
    sessions = (await running.client.get("/api/v1/account/sessions")).json()
    assert len(sessions) == 1
