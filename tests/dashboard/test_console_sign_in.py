"""The operator console's sign-in on the operator listener, as plain HTTP (what a browser with
JavaScript off sends): the login-CSRF token, the operator's own HttpOnly SameSite=Strict cookie,
the session's CSRF token on every write (form field or header), the role, sign-out and
throttling. In-process app, real PostgreSQL and NATS."""

from __future__ import annotations

import httpx
from aiapi_shared.bus import Bus

from tests.accounts.conftest import ADMIN, Running, make_settings, run_app, running
from tests.accounts.operators import audit, new_operator
from tests.dashboard.conftest import HIDDEN_CSRF, PASSWORD
from tests.dashboard.test_pages_forms import csrf_of

__all__ = ["running"]


async def sign_in(client: httpx.AsyncClient, email: str, next_path: str = "/admin/") -> str:
    """Sign in through the form; the CSRF token of the landing page's forms."""
    token = await csrf_of(client, "/admin/sign-in")
    inside = await client.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": email, "password": PASSWORD, "next": next_path},
    )
    assert inside.status_code == 303, inside.text
    assert inside.headers["location"] == next_path
    return await csrf_of(client, "/admin/")


async def test_signed_out_console_pages_redirect_to_sign_in(running: Running) -> None:
    answer = await running.admin.get("/admin/")
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/admin/sign-in?next=/admin/",
    )
    root = await running.admin.get("/", headers=ADMIN)
    assert root.headers["location"] == "/admin/"
    api = await running.admin.get("/admin/v1/operators")
    assert api.status_code == 401  # the API answers, it does not redirect
    for path in ("/api/v1/account", "/admin/nothing-here", "/admin/v1/nothing-here"):
        unknown = await running.admin.get(path)
        assert (unknown.status_code, unknown.json()["error"]["type"]) == (404, "not_found_error")


async def test_sign_in_sets_a_strict_http_only_cookie_and_the_page_shows_the_operator(
    running: Running,
) -> None:
    await new_operator(running.admin, "admin", "ada@ops.example", PASSWORD, "Ada")
    page = await running.admin.get("/admin/sign-in")
    assert 'href="/static/app.css' in page.text  # the dashboard's stylesheet
    token = HIDDEN_CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    inside = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": "ADA@ops.example", "password": PASSWORD},
    )
    assert (inside.status_code, inside.headers["location"]) == (303, "/admin/")
    cookie = inside.headers["set-cookie"]
    assert cookie.startswith("aiapi_operator=")
    for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/admin"):
        assert attribute.lower() in cookie.lower(), cookie
    home = await running.admin.get("/admin/")
    assert home.status_code == 200
    assert 'id="operator-name">Ada<' in home.text and "(admin)" in home.text
    me = await running.admin.get("/admin/v1/whoami")
    assert (me.json()["operator"]["name"], me.json()["via"]) == ("Ada", "session")


async def test_sign_in_refuses_a_missing_form_token_a_wrong_password_and_off_site_targets(
    running: Running,
) -> None:
    await new_operator(running.admin, "admin", "ada@ops.example", PASSWORD)
    forged = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": "x" * 43, "email": "ada@ops.example", "password": PASSWORD},
    )
    assert forged.status_code == 403 and "expired" in forged.text
    token = await csrf_of(running.admin, "/admin/sign-in")
    wrong = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": "ada@ops.example", "password": "nope" * 4},
    )
    assert wrong.status_code == 401 and "invalid email or password" in wrong.text
    assert not running.admin.cookies.get("aiapi_operator")
    # A customer's credentials are not an operator's.
    await running.signed_in("cust@example.com")
    customer = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": "cust@example.com", "password": PASSWORD},
    )
    assert customer.status_code == 401
    off_site = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": "ada@ops.example", "password": PASSWORD,
              "next": "//evil.example/admin/"},
    )  # fmt: skip
    assert off_site.headers["location"] == "/admin/"


async def test_a_session_write_needs_its_csrf_token_and_is_audited(running: Running) -> None:
    await new_operator(running.admin, "admin", "ada@ops.example", PASSWORD, "Ada")
    csrf = await sign_in(running.admin, "ada@ops.example")
    body = {"email": "kim@example.com"}
    bare = await running.admin.post("/admin/v1/accounts", json=body)
    assert (bare.status_code, bare.json()["error"]["type"]) == (403, "permission_error")
    wrong = await running.admin.post(
        "/admin/v1/accounts", json=body, headers={"x-csrf-token": "forged"}
    )
    assert wrong.status_code == 403
    made = await running.admin.post(
        "/admin/v1/accounts",
        json=body,
        headers={"x-csrf-token": csrf, "aiapi-reason": "asked by phone"},
    )
    assert made.status_code == 201, made.text
    entries = await audit(running.admin, operator="Ada")
    assert [(e["status"], e["reason"]) for e in entries] == [
        (201, "asked by phone"),
        (403, None),
        (403, None),
    ]
    assert all(csrf not in str(e) for e in entries)


async def test_a_support_session_reads_cannot_write_and_can_sign_out(running: Running) -> None:
    await new_operator(running.admin, "support", "sam@ops.example", PASSWORD, "Sam")
    csrf = await sign_in(running.admin, "sam@ops.example")
    assert (await running.admin.get("/admin/v1/operators")).status_code == 200
    refused = await running.admin.post(
        "/admin/v1/accounts", json={"email": "l@example.com"}, headers={"x-csrf-token": csrf}
    )
    assert refused.status_code == 403
    cookie = running.admin.cookies.get("aiapi_operator")
    assert cookie
    forged = await running.admin.post("/admin/sign-out", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and "Not allowed" in forged.text
    out = await running.admin.post("/admin/sign-out", data={"csrf_token": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/admin/sign-in")
    assert not running.admin.cookies.get("aiapi_operator")
    # The old cookie is dead server-side too, not just forgotten by this browser.
    running.admin.cookies.set("aiapi_operator", cookie, path="/admin")
    replay = await running.admin.get("/admin/")
    assert replay.status_code == 303


async def test_disabling_an_operator_ends_its_console_session(running: Running) -> None:
    operator, _ = await new_operator(running.admin, "admin", "ada@ops.example", PASSWORD)
    await sign_in(running.admin, "ada@ops.example")
    off = await running.admin.patch(
        f"/admin/v1/operators/{operator['id']}", json={"disabled": True}, headers=ADMIN
    )
    assert off.status_code == 200
    assert (await running.admin.get("/admin/")).status_code == 303
    token = await csrf_of(running.admin, "/admin/sign-in")
    again = await running.admin.post(
        "/admin/sign-in",
        data={"csrf_token": token, "email": "ada@ops.example", "password": PASSWORD},
    )
    assert again.status_code == 401


async def test_operator_sign_in_is_throttled_like_customer_sign_in(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, sign_in_free_failures_per_email=2)
    async with run_app(settings, bus) as running:
        await new_operator(running.admin, "admin", "ada@ops.example", PASSWORD)
        token = await csrf_of(running.admin, "/admin/sign-in")
        statuses = []
        for _ in range(4):
            answer = await running.admin.post(
                "/admin/sign-in",
                data={"csrf_token": token, "email": "ada@ops.example", "password": "wrong" * 3},
            )
            statuses.append(answer.status_code)
        assert statuses[:2] == [401, 401] and 429 in statuses[2:]
        throttled = await running.admin.post(
            "/admin/sign-in",
            data={"csrf_token": token, "email": "ada@ops.example", "password": PASSWORD},
        )
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
