"""The support role reads and never writes: every write route of the operator listener, found by
walking the app's route table (so a route added later is covered), answers 403 in the operator
API's error format to a support operator without running; an admin's same request runs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiapi_accounts.app import OPERATOR
from aiapi_accounts.errors import Unauthenticated
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.operators.domain import READ_METHODS
from aiapi_accounts.operators.gate import ANY_ROLE, is_anonymous
from aiapi_shared import billing_api
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.accounts.conftest import ADMIN, Running, respond
from tests.accounts.operators import audit, bearer, new_operator
from tests.accounts.test_operator_api import balance_reply


def _writes(running: Running) -> list[tuple[str, str, Route]]:
    """Every (method, concrete path, route) the admin app serves with a method that writes,
    but for the gate's anonymous ones (signing in), which must be exactly those."""
    found, anonymous = [], set()
    for route in running.admin_app.routes:
        if not isinstance(route, Route):
            continue  # the static files: GET only
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in sorted((route.methods or set()) - READ_METHODS):
            if is_anonymous(method, path):
                anonymous.add((method, path))
            else:
                found.append((method, path, route))
    assert anonymous == {("POST", "/admin/sign-in")}
    return found


def _stand_in(calls: list[tuple[str, str]]) -> Any:
    """Replaces a route's handler: records that it ran, answers 200 without doing anything."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def test_no_write_route_runs_for_a_support_operator(running: Running) -> None:
    _, support = await new_operator(running.admin, "support")
    writes = _writes(running)
    # The table really holds the operator API's writes (and the console's sign-out).
    paths = {(m, r.path) for m, _, r in writes}
    assert ("POST", "/admin/v1/accounts") in paths
    assert ("DELETE", "/admin/v1/operators/{operator_id}/tokens/{token_id}") in paths
    assert ("POST", "/admin/sign-out") in paths
    calls: list[tuple[str, str]] = []
    for _, _, route in writes:
        route.app = _stand_in(calls)
    for method, path, route in writes:
        answer = await running.admin.request(
            method, path, json={"reason": "trying"}, headers=bearer(support)
        )
        if (method, route.path) in ANY_ROLE:
            assert answer.status_code == 200, (method, path)
            continue
        assert answer.status_code == 403, (method, path)
        if route.path.startswith("/admin/v1/"):
            assert answer.json()["error"]["type"] == "permission_error"
        else:  # a console page's form: the refusal is a page
            assert "may only read" in answer.text, (method, path)
    assert calls == [(m, p) for m, p, r in writes if (m, r.path) in ANY_ROLE]
    # The same requests by the bootstrap admin do reach every one of them.
    calls.clear()
    for method, path, _ in writes:
        answer = await running.admin.request(method, path, json={}, headers=ADMIN)
        assert answer.status_code == 200, (method, path)
    assert sorted(calls) == sorted((m, p) for m, p, _ in writes)
    # ...and every one of those writes, refused or done, is in the audit log.
    entries = await audit(running.admin, limit="500")
    assert len(entries) == 2 * len(writes) + 2  # + the operator and its token made above
    assert {(e["method"], e["route"]) for e in entries} >= {(m, r.path) for m, _, r in writes}


async def test_a_support_operator_reads_but_its_account_creation_never_happens(
    running: Running,
) -> None:
    _, support = await new_operator(running.admin, "support")
    account_id = await running.new_account("carol@example.com")
    await respond(running.bus, billing_api.ACCOUNT_SUBJECT, balance_reply)
    read = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=bearer(support))
    assert (read.status_code, read.json()["email"]) == (200, "carol@example.com")
    assert (
        await running.admin.head("/admin/v1/operators", headers=bearer(support))
    ).status_code == 200
    refused = await running.admin.post(
        "/admin/v1/accounts", json={"email": "dave@example.com"}, headers=bearer(support)
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "type": "permission_error",
            "message": "the support role may only read (GET, HEAD)",
        }
    }
    # Not created: the admin can still take the address.
    made = await running.admin.post(
        "/admin/v1/accounts", json={"email": "dave@example.com"}, headers=ADMIN
    )
    assert made.status_code == 201
    suspended = await running.admin.patch(
        f"/admin/v1/accounts/{account_id}", json={"status": "suspended"}, headers=bearer(support)
    )
    assert suspended.status_code == 403
    after = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert after.json()["status"] == "active"


@pytest.mark.parametrize("endpoint", OPERATOR, ids=lambda e: f"{e.method} {e.path}")
async def test_every_operator_route_asks_for_the_operator_first(endpoint: Endpoint) -> None:
    """A route reached without the gate (mounted elsewhere by mistake) refuses before it does
    anything: each handler's first act is ``acting(request)``."""
    scope = {"type": "http", "method": endpoint.method, "path": endpoint.path, "headers": []}
    with pytest.raises(Unauthenticated):
        await endpoint.handler(Request(scope))
