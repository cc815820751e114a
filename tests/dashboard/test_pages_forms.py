"""The dashboard's pages as plain HTML forms (what a browser with JavaScript off sends): CSRF on
every write, the login-CSRF token before sign-in, redirects, keys shown once, and one customer
never reaching another's keys or sessions. In-process app, real PostgreSQL and NATS."""

from __future__ import annotations

import re

import httpx
from aiapi_shared import billing_api
from aiapi_shared.bus import Bus

from tests.accounts.conftest import Running, make_settings, respond, run_app, running

__all__ = ["running"]
from tests.dashboard.conftest import HIDDEN_CSRF, PASSWORD

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = HIDDEN_CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_up_and_in(client: httpx.AsyncClient, email: str) -> None:
    token = await csrf_of(client, "/sign-up")
    up = await client.post(
        "/sign-up",
        data={"csrf_token": token, "email": email, "password": PASSWORD,
              "password_again": PASSWORD, "plan": "basic"},
    )  # fmt: skip
    assert up.status_code == 200, up.text
    assert "If this email was free" in up.text
    token = HIDDEN_CSRF.search(up.text).group(1)  # type: ignore[union-attr]
    inside = await client.post(
        "/sign-in",
        data={"csrf_token": token, "email": email, "password": PASSWORD, "next": "/keys"},
    )
    assert inside.status_code == 303, inside.text
    assert inside.headers["location"] == "/keys"
    assert client.cookies.get("aiapi_session")


def second_client(running: Running) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=running.client._transport, base_url="https://accounts.test")


async def test_signed_out_pages_redirect_to_sign_in(running: Running) -> None:
    for path in ("/", "/keys", "/account", "/plan"):
        answer = await running.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/sign-in?next={path}"


async def test_sign_up_and_sign_in_work_as_plain_forms(running: Running) -> None:
    await sign_up_and_in(running.client, "carol@example.com")
    keys = await running.client.get("/keys")
    assert keys.status_code == 200
    assert "carol@example.com" in keys.text
    # The pages protect themselves: only our own scripts and styles, no framing, no caching.
    assert "script-src 'self'" in keys.headers["content-security-policy"]
    assert keys.headers["cache-control"] == "no-store"
    assert keys.headers["x-frame-options"] == "DENY"


async def test_sign_in_without_the_form_token_is_refused(running: Running) -> None:
    await running.client.post(
        "/api/v1/auth/sign-up", json={"email": "dan@example.com", "password": PASSWORD}
    )
    # A cross-site form: right credentials, but no token of this browser (login CSRF).
    forged = await running.client.post(
        "/sign-in", data={"csrf_token": "x" * 43, "email": "dan@example.com", "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert "aiapi_session" not in forged.headers.get("set-cookie", "")
    assert running.client.cookies.get("aiapi_session") is None


async def test_wrong_password_shows_the_form_again(running: Running) -> None:
    await running.client.post(
        "/api/v1/auth/sign-up", json={"email": "erin@example.com", "password": PASSWORD}
    )
    token = await csrf_of(running.client, "/sign-in")
    wrong = await running.client.post(
        "/sign-in", data={"csrf_token": token, "email": "erin@example.com", "password": "nope" * 4}
    )
    assert wrong.status_code == 401
    assert "invalid email or password" in wrong.text
    assert 'value="erin@example.com"' in wrong.text  # the email stays, the password does not
    assert "nope" not in wrong.text


async def test_sign_in_never_redirects_off_site(running: Running) -> None:
    await running.client.post(
        "/api/v1/auth/sign-up", json={"email": "fay@example.com", "password": PASSWORD}
    )
    token = await csrf_of(running.client, "/sign-in")
    answer = await running.client.post(
        "/sign-in",
        data={"csrf_token": token, "email": "fay@example.com", "password": PASSWORD,
              "next": "//evil.example/steal"},
    )  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_a_key_is_shown_once_and_revoked_only_with_the_token(running: Running) -> None:
    client = running.client
    await sign_up_and_in(client, "gus@example.com")
    token = await csrf_of(client, "/keys")
    created = await client.post("/keys", data={"csrf_token": token, "name": "laptop"})
    assert created.status_code == 201
    secret = re.search(r'id="new-key-value">(sk-cc-[^<]+)<', created.text)
    assert secret, created.text
    listed = await client.get("/keys")
    assert secret.group(1) not in listed.text  # never again
    key_id = re.search(r'data-key-id="(key_[0-9a-f]+)"', listed.text).group(1)  # type: ignore[union-attr]
    confirm = await client.get(f"/keys/{key_id}/revoke")
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.text
    # Without the session's token the revocation is refused and the key stays active.
    forged = await client.post(f"/keys/{key_id}/revoke", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    keys = (await client.get("/api/v1/account/keys")).json()
    assert keys[0]["status"] == "active"
    done = await client.post(f"/keys/{key_id}/revoke", data={"csrf_token": token})
    assert done.status_code == 303
    keys = (await client.get("/api/v1/account/keys")).json()
    assert keys[0]["status"] == "revoked"


async def test_a_key_needs_a_name(running: Running) -> None:
    await sign_up_and_in(running.client, "hal@example.com")
    token = await csrf_of(running.client, "/keys")
    answer = await running.client.post("/keys", data={"csrf_token": token, "name": "  "})
    assert answer.status_code == 400
    assert "needs a name" in answer.text
    assert (await running.client.get("/api/v1/account/keys")).json() == []


async def test_a_second_customer_reaches_none_of_the_first_ones_keys_or_sessions(
    running: Running,
) -> None:
    first = running.client
    await sign_up_and_in(first, "ivy@example.com")
    token = await csrf_of(first, "/keys")
    await first.post("/keys", data={"csrf_token": token, "name": "ivy's key"})
    key_id = (await first.get("/api/v1/account/keys")).json()[0]["id"]
    session_id = (await first.get("/api/v1/account/sessions")).json()[0]["id"]
    async with second_client(running) as second:
        await sign_up_and_in(second, "jon@example.com")
        theirs = await csrf_of(second, "/keys")
        keys_page = await second.get("/keys")
        assert "ivy" not in keys_page.text
        assert (await second.get(f"/keys/{key_id}/revoke")).status_code == 404
        revoke = await second.post(f"/keys/{key_id}/revoke", data={"csrf_token": theirs})
        assert revoke.status_code == 404
        end = await second.post(f"/account/sessions/{session_id}/end", data={"csrf_token": theirs})
        assert end.status_code == 404
        assert "ivy" not in (await second.get("/account")).text
    assert (await first.get("/api/v1/account/keys")).json()[0]["status"] == "active"
    assert (await first.get("/keys")).status_code == 200  # the first session still works


async def test_password_change_and_ending_a_session(running: Running) -> None:
    first = running.client
    await sign_up_and_in(first, "kim@example.com")
    async with second_client(running) as other:
        token = await csrf_of(other, "/sign-in")
        await other.post(
            "/sign-in", data={"csrf_token": token, "email": "kim@example.com", "password": PASSWORD}
        )
        assert (await other.get("/account")).status_code == 200
        token = await csrf_of(first, "/account")
        wrong = await first.post(
            "/account/password",
            data={"csrf_token": token, "current_password": "not the password",
                  "new_password": "a brand new password", "new_password_again": "a brand new password"},
        )  # fmt: skip
        assert wrong.status_code == 400
        assert "current password is wrong" in wrong.text
        changed = await first.post(
            "/account/password",
            data={"csrf_token": token, "current_password": PASSWORD,
                  "new_password": "a brand new password", "new_password_again": "a brand new password"},
        )  # fmt: skip
        assert changed.status_code == 200
        assert "Password changed" in changed.text
        # The other session was signed out by the change.
        assert (await other.get("/account")).status_code == 303
    own = (await first.get("/api/v1/account/sessions")).json()
    assert len(own) == 1
    out = await first.post(f"/account/sessions/{own[0]['id']}/end", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/sign-in"
    assert (await first.get("/keys")).status_code == 303


async def test_sign_out_needs_the_token(running: Running) -> None:
    await sign_up_and_in(running.client, "lou@example.com")
    forged = await running.client.post("/sign-out", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert (await running.client.get("/keys")).status_code == 200
    token = await csrf_of(running.client, "/keys")
    out = await running.client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await running.client.get("/keys")).status_code == 303


async def test_static_files_and_a_form_of_the_wrong_type(running: Running) -> None:
    css = await running.client.get("/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    js = await running.client.get("/static/app.js")
    assert js.status_code == 200
    await sign_up_and_in(running.client, "max@example.com")
    wrong = await running.client.post("/keys", json={"name": "x"})
    assert wrong.status_code == 400
    big = await running.client.post("/keys", content=b"a=" + b"x" * 20000, headers=FORM)
    assert big.status_code == 400


async def test_top_up_and_overview_say_so_when_payments_and_billing_are_down(
    running: Running,
) -> None:
    assert (await running.client.get("/api/v1/account/top-up")).status_code == 401
    await sign_up_and_in(running.client, "ned@example.com")
    api = await running.client.get("/api/v1/account/top-up")
    assert api.status_code == 503
    assert api.json()["error"]["message"].startswith("payments is not reachable")
    assert (await running.client.get("/api/v1/account/top-up/deposits")).status_code == 503
    page = await running.client.get("/top-up")
    assert page.status_code == 503
    assert "No deposit address can be shown right now: payments is not reachable" in page.text
    overview = await running.client.get("/")
    assert overview.status_code == 200
    assert "billing is not reachable" in overview.text


async def test_page_changes_count_against_the_accounts_writes_per_minute(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, account_writes_per_minute=2)
    async with run_app(settings, bus) as app:
        await sign_up_and_in(app.client, "olga@example.com")
        token = await csrf_of(app.client, "/keys")
        for name in ("one", "two"):
            made = await app.client.post("/keys", data={"csrf_token": token, "name": name})
            assert made.status_code == 201
        third = await app.client.post("/keys", data={"csrf_token": token, "name": "three"})
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        assert "account changes per minute" in third.text
        names = [k["name"] for k in (await app.client.get("/api/v1/account/keys")).json()]
        assert sorted(names) == ["one", "two"]


async def test_the_overview_shows_what_an_account_below_zero_owes(running: Running) -> None:
    await sign_up_and_in(running.client, "owen@example.com")
    balances = {"balance": "1.25", "available": "1.25", "open_holds": "0", "version": 1}
    await respond(
        running.bus,
        billing_api.ACCOUNT_SUBJECT,
        lambda request: {"account_id": request["account_id"], **balances},
    )
    await respond(running.bus, billing_api.DAILY_KEY_USAGE_SUBJECT, lambda _: {"rows": []})
    in_credit = await running.client.get("/")
    assert in_credit.status_code == 200
    assert 'id="balance">1.25<' in in_credit.text
    assert 'id="owed"' not in in_credit.text

    balances.update(balance="-0.0044", available="-0.0044", version=2)
    owing = await running.client.get("/")
    assert owing.status_code == 200
    assert 'id="owed">0.0044<' in owing.text
    assert 'href="/top-up"' in owing.text
