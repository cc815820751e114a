from __future__ import annotations

from tests.accounts.conftest import ADMIN, Running


async def test_smoke(running: Running) -> None:
    account_id = await running.new_account()
    key = await running.new_key(account_id)
    assert key["key"].startswith("sk-cc-")
    answer = await running.client.get("/openapi.json")
    assert answer.status_code == 200
    answer = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert answer.status_code == 503, answer.text
