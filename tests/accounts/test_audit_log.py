"""The audit log: every write through the operator listener with who, when, from where, what and
why, without secrets; filtered and paged newest first; append-only in PostgreSQL."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import psycopg
import pytest
from aiapi_shared import billing_api
from aiapi_shared.bus import Bus
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.accounts.conftest import ADMIN, Running, make_settings, respond, run_app
from tests.accounts.operators import audit, bearer, new_operator
from tests.accounts.test_operator_api import adjust_reply, balance_reply

SECRET_PASSWORD = "operator password that must not leak"


async def test_each_write_is_recorded_with_who_why_where_and_no_secret(running: Running) -> None:
    admin, token = await new_operator(running.admin, "admin", name="Ada", password=SECRET_PASSWORD)
    me = bearer(token)
    await respond(running.bus, billing_api.ADJUST_SUBJECT, adjust_reply)
    await respond(running.bus, billing_api.ACCOUNT_SUBJECT, balance_reply)
    made = await running.admin.post(
        "/admin/v1/accounts",
        json={"email": "erin@example.com"},
        headers={**me, "Aiapi-Reason": quote("onboarding call, ticket #42 (Zürich)")},
    )
    account_id = made.json()["id"]
    adjusted = await running.admin.post(
        f"/admin/v1/accounts/{account_id}/adjustments",
        json={"amount_usd": "5.00", "reason": "goodwill credit"},
        headers=me,
    )
    assert adjusted.status_code == 201
    key = await running.admin.post(
        f"/admin/v1/accounts/{account_id}/keys", json={"name": "ci"}, headers=me
    )
    secret_key = key.json()["key"]
    refused = await running.admin.patch(
        f"/admin/v1/accounts/{account_id}", json={"plan": "gold"}, headers=me
    )
    assert refused.status_code == 400
    # Reads are not recorded.
    await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=me)

    entries = await audit(running.admin, operator=admin["id"])
    assert [(e["method"], e["route"], e["status"]) for e in entries] == [
        ("PATCH", "/admin/v1/accounts/{id}", 400),
        ("POST", "/admin/v1/accounts/{id}/keys", 201),
        ("POST", "/admin/v1/accounts/{id}/adjustments", 201),
        ("POST", "/admin/v1/accounts", 201),
    ]
    for entry in entries:
        assert (entry["operator_id"], entry["operator_name"]) == (admin["id"], "Ada")
        assert entry["source"] == "127.0.0.1"
        assert entry["account_id"] == account_id
    patch, key_entry, adjustment, creation = entries
    assert creation["reason"] == "onboarding call, ticket #42 (Zürich)"
    assert creation["summary"] == {"email": "erin@example.com"}
    assert creation["target"] == {"created_id": account_id}
    assert adjustment["reason"] == "goodwill credit"
    assert adjustment["summary"] == {"amount_usd": "5.00", "reason": "goodwill credit"}
    assert adjustment["target"] == {"id": account_id}
    assert key_entry["summary"] == {"name": "ci"} and key_entry["reason"] is None
    assert patch["summary"] == {"plan": "gold"}
    # Nothing secret anywhere in the log: not the customer key, the operator's password or token.
    everything = json.dumps(await audit(running.admin, limit="500"))
    for secret in (secret_key, SECRET_PASSWORD, token):
        assert secret not in everything
    [operator_made] = await audit(running.admin, operator="bootstrap", limit="1")
    assert operator_made["route"] == "/admin/v1/operators/{operator_id}/tokens"


async def test_the_source_is_the_forwarded_client_only_behind_a_trusted_proxy(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, trusted_proxies="127.0.0.1")
    async with run_app(settings, bus) as running:
        forwarded = {**ADMIN, "x-forwarded-for": "198.51.100.7, 203.0.113.9"}
        await running.admin.post(
            "/admin/v1/accounts", json={"email": "f@example.com"}, headers=forwarded
        )
        [entry] = await audit(running.admin)
        assert entry["source"] == "203.0.113.9"
    async with run_app(make_settings(database_url, nats_url), bus) as running:
        await running.admin.post(
            "/admin/v1/accounts", json={"email": "g@example.com"}, headers=forwarded
        )
        assert (await audit(running.admin, limit="1"))[0]["source"] == "127.0.0.1"


async def test_filters_and_cursor_pages_newest_first(running: Running) -> None:
    first = await running.new_account("h@example.com")
    second = await running.new_account("i@example.com")
    for n in range(3):
        await running.admin.post(
            f"/admin/v1/accounts/{first}/keys", json={"name": f"k{n}"}, headers=ADMIN
        )
    await running.admin.post(f"/admin/v1/accounts/{second}/keys", json={"name": "x"}, headers=ADMIN)
    everything = await audit(running.admin)
    assert len(everything) == 6
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    of_first = await audit(running.admin, account_id=first)
    assert [e["summary"].get("name") for e in of_first] == ["k2", "k1", "k0", None]
    pages: list[int] = []
    cursor = ""
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        answer = await running.admin.get("/admin/v1/audit", params=params, headers=ADMIN)
        pages += [e["id"] for e in answer.json()["data"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == ids
    day = everything[0]["at"][:10]
    assert len(await audit(running.admin, **{"from": day, "to": day})) == 6
    assert await audit(running.admin, to="2000-01-01") == []
    assert await audit(running.admin, operator="nobody") == []
    for bad in ({"cursor": "nope"}, {"limit": "0"}, {"from": "yesterday"}):
        answer = await running.admin.get("/admin/v1/audit", params=bad, headers=ADMIN)
        assert answer.status_code == 400, bad


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE accounts.audit_log SET reason = 'rewritten'",
        "DELETE FROM accounts.audit_log",
        "TRUNCATE accounts.audit_log",
    ],
)
async def test_the_log_refuses_update_delete_and_truncate(
    running: Running, database_url: str, statement: str
) -> None:
    await running.new_account("j@example.com")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute(statement.encode())
        cur = await conn.execute(b"SELECT count(*), max(reason) FROM accounts.audit_log")
        assert await cur.fetchone() == (1, None)


async def test_hostile_writes_are_refused_and_still_recorded(running: Running) -> None:
    hostile = [
        ("/admin/v1/accounts", b'{"email": "a\\u0000@example.com"}'),
        ("/admin/v1/accounts", b"[" * 20_000 + b"]" * 20_000),
        ("/admin/v1/accounts/acc_%00x/keys", b'{"name": "k"}'),
        ("/admin/v1/accounts", b"x" * 70_000),
    ]
    statuses = []
    for path, body in hostile:
        answer = await running.admin.post(
            path, content=body, headers={**ADMIN, "content-type": "application/json"}
        )
        assert answer.status_code < 500, (path, answer.text[:200])
        assert answer.json()["error"]["type"]
        statuses.append(answer.status_code)
    entries = await audit(running.admin)
    assert [e["status"] for e in reversed(entries)] == statuses
    assert statuses[-1] == 413
    assert entries[1]["target"] == {"id": "acc_\ufffdx"}


async def test_a_write_that_crashes_is_recorded_as_a_500(running: Running) -> None:
    route = next(
        r
        for r in running.admin_app.routes
        if isinstance(r, Route) and r.path == "/admin/v1/accounts/{id}/invitations"
    )

    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    route.app = crash
    transport = httpx.ASGITransport(app=running.admin_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://accounts.test") as client:
        answer = await client.post(
            "/admin/v1/accounts/acc_1/invitations", headers={**ADMIN, "aiapi-reason": "lost"}
        )
    assert (answer.status_code, answer.json()["error"]["type"]) == (500, "internal_error")
    [entry] = await audit(running.admin)
    assert (entry["status"], entry["reason"], entry["account_id"]) == (500, "lost", "acc_1")
