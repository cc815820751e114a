"""Input the service cannot take (found by fuzzing) is the caller's 400, never a 500: a NUL
character PostgreSQL cannot store, in a body field, a path or a query; a path or header value
that does not fit the command it goes into."""

from __future__ import annotations

from .conftest import ADMIN, Running


async def test_a_nul_character_anywhere_is_a_400(running: Running) -> None:
    client = running.client
    answers = [
        await client.post("/api/v1/auth/sign-in", json={"email": "\x00", "password": "x"}),
        await client.post(
            "/api/v1/auth/sign-up", json={"email": "a\x00@example.com", "password": "x" * 12}
        ),
        await running.admin.post(
            "/admin/v1/accounts", json={"email": "b\x00@example.com"}, headers=ADMIN
        ),
        await running.admin.get("/admin/v1/accounts/acc_%00", headers=ADMIN),
    ]
    for answer in answers:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert "\x00" not in answer.text


async def test_path_and_header_values_that_do_not_fit_a_command_are_a_400(running: Running) -> None:
    client = running.admin
    model = {"display_name": "x", "context_window": 1, "max_output_tokens": 1}
    account_id = await running.new_account("fit@example.com")
    answers = [
        await client.put("/admin/v1/catalogue/models/%3A", json=model, headers=ADMIN),
        await client.put(
            "/admin/v1/catalogue/aliases/" + "a" * 101, json={"target": "x"}, headers=ADMIN
        ),
        await client.post(
            f"/admin/v1/accounts/{account_id}/adjustments",
            json={"amount_usd": "1.00", "reason": "x"},
            headers={**ADMIN, "idempotency-key": "k" * 200},
        ),
    ]
    for answer in answers:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"
