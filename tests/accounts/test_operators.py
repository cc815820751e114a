"""Named operators (issue 17 item 5): the bootstrap token makes the first admin, whose own token
then works; operators are listed, disabled and re-enabled; tokens are shown once, stored hashed
and revocable."""

from __future__ import annotations

import psycopg

from tests.accounts.conftest import ADMIN, ADMIN_TOKEN, Running
from tests.accounts.operators import bearer, new_operator


async def test_the_bootstrap_makes_an_admin_whose_token_then_acts_as_that_admin(
    running: Running,
) -> None:
    me = await running.admin.get("/admin/v1/whoami", headers=ADMIN)
    assert me.json() == {
        "operator": {
            "id": "bootstrap",
            "name": "bootstrap",
            "email": None,
            "role": "admin",
            "disabled": False,
            "console": False,
            "created_at": None,
            "created_by": None,
        },
        "via": "bootstrap",
    }
    admin, token = await new_operator(running.admin, "admin", name="Ada Admin")
    assert (admin["role"], admin["created_by"], admin["console"]) == ("admin", "bootstrap", False)
    assert token.startswith("aiapi_op_")
    who = await running.admin.get("/admin/v1/whoami", headers=bearer(token))
    assert (who.json()["operator"]["id"], who.json()["via"]) == (admin["id"], "token")
    # The new admin writes: it makes a support operator, recorded as its creator.
    made = await running.admin.post(
        "/admin/v1/operators",
        json={"name": "Sam", "email": "SAM@ops.example ", "role": "support"},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.text
    assert (made.json()["email"], made.json()["created_by"]) == ("sam@ops.example", admin["id"])
    listed = await running.admin.get("/admin/v1/operators", headers=bearer(token))
    assert [o["name"] for o in listed.json()["data"]] == ["Ada Admin", "Sam"]


async def test_a_duplicate_email_and_a_bad_body_are_refused(running: Running) -> None:
    await new_operator(running.admin, "admin")
    again = await running.admin.post(
        "/admin/v1/operators",
        json={"name": "x", "email": "admin@ops.example", "role": "support"},
        headers=ADMIN,
    )
    assert (again.status_code, again.json()["error"]["type"]) == (409, "conflict_error")
    for body in (
        {"name": "x", "email": "x@ops.example", "role": "root"},
        {"name": "", "email": "x@ops.example", "role": "admin"},
        {"name": "x", "email": "not an email", "role": "admin"},
        {"name": "x", "email": "x@ops.example", "role": "admin", "password": "short"},
    ):
        bad = await running.admin.post("/admin/v1/operators", json=body, headers=ADMIN)
        assert bad.status_code == 400, body


async def test_unknown_and_revoked_tokens_are_401_and_tokens_are_stored_hashed(
    running: Running, database_url: str
) -> None:
    operator, token = await new_operator(running.admin, "support")
    assert (await running.admin.get("/admin/v1/whoami", headers=bearer(token))).status_code == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = await running.admin.get("/admin/v1/whoami", headers=bearer(forged))
    assert (answer.status_code, answer.json()["error"]["type"]) == (401, "authentication_error")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT token_hash, hint FROM accounts.operator_tokens")
        stored = await cur.fetchall()
    assert len(stored) == 1 and token not in stored[0][0]
    assert stored[0][1] == "aiapi_op_..." + token[-4:]
    tokens = await running.admin.get(f"/admin/v1/operators/{operator['id']}/tokens", headers=ADMIN)
    [listed] = tokens.json()["data"]
    assert "token" not in listed and listed["last_used_at"] is not None
    gone = await running.admin.delete(
        f"/admin/v1/operators/{operator['id']}/tokens/{listed['id']}", headers=ADMIN
    )
    assert gone.status_code == 204
    assert (await running.admin.get("/admin/v1/whoami", headers=bearer(token))).status_code == 401
    missing = await running.admin.delete(
        f"/admin/v1/operators/{operator['id']}/tokens/opt_nope", headers=ADMIN
    )
    assert missing.status_code == 404


async def test_a_disabled_operator_is_locked_out_until_enabled_again(running: Running) -> None:
    operator, token = await new_operator(running.admin, "admin")
    url = f"/admin/v1/operators/{operator['id']}"
    off = await running.admin.patch(url, json={"disabled": True}, headers=ADMIN)
    assert (off.status_code, off.json()["disabled"]) == (200, True)
    assert (await running.admin.get("/admin/v1/whoami", headers=bearer(token))).status_code == 401
    # The bootstrap keeps working whatever happens to the operators.
    assert (await running.admin.get("/admin/v1/operators", headers=ADMIN)).status_code == 200
    on = await running.admin.patch(url, json={"disabled": False}, headers=ADMIN)
    assert on.json()["disabled"] is False
    assert (await running.admin.get("/admin/v1/whoami", headers=bearer(token))).status_code == 200
    role = await running.admin.patch(url, json={"role": "support"}, headers=ADMIN)
    assert role.json()["role"] == "support"
    empty = await running.admin.patch(url, json={}, headers=ADMIN)
    assert empty.status_code == 400
    unknown = await running.admin.patch(
        "/admin/v1/operators/op_nope", json={"disabled": True}, headers=ADMIN
    )
    assert unknown.status_code == 404


async def test_the_bootstrap_token_is_not_an_operator_token_prefix_trick(running: Running) -> None:
    """A token that merely starts like an operator token, or is the bootstrap token with a
    suffix, is nobody."""
    for token in ("aiapi_op_", "aiapi_op_x", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
        answer = await running.admin.get("/admin/v1/whoami", headers=bearer(token))
        assert answer.status_code == 401, token
