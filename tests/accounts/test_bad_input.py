"""Input PostgreSQL cannot store (found by fuzzing): a NUL character in a body field, a path or
a query is the caller's 400, never a 500."""

from __future__ import annotations

from .conftest import ADMIN, Running


async def test_a_nul_character_anywhere_is_a_400(running: Running) -> None:
    client = running.client
    answers = [
        await client.post("/api/v1/auth/sign-in", json={"email": "\x00", "password": "x"}),
        await client.post(
            "/api/v1/auth/sign-up", json={"email": "a\x00@example.com", "password": "x" * 12}
        ),
        await client.post("/admin/v1/accounts", json={"email": "b\x00@example.com"}, headers=ADMIN),
        await client.get("/admin/v1/accounts/acc_%00", headers=ADMIN),
    ]
    for answer in answers:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert "\x00" not in answer.text
