"""Customers made the real way, for the scripts in bench/: through the accounts operator API
(create on a plan, credit by an adjustment, issue a key), so that the edges learn the keys from
accounts' KV records and billing holds the balances."""

from __future__ import annotations

import aiohttp
from aiapi_testkit.stack import LocalStack


async def open_account(
    http: aiohttp.ClientSession, stack: LocalStack, *, label: str, plan: str, credit_usd: str
) -> tuple[str, str]:
    """A new account (``<label>@example.com``) credited ``credit_usd``: (account id, API key)."""
    auth = {"authorization": f"Bearer {stack.admin_token}"}
    base = stack.admin_url + "/admin/v1/accounts"
    body = {"email": f"{label}@example.com", "plan": plan}
    async with http.post(base, json=body, headers=auth) as answer:
        assert answer.status == 201, await answer.text()
        account_id: str = (await answer.json())["id"]
    credit = {"amount_usd": credit_usd, "reason": f"bench: {label}"}
    headers = {**auth, "idempotency-key": f"{label}-credit"}
    async with http.post(f"{base}/{account_id}/adjustments", json=credit, headers=headers) as a:
        assert a.status == 201, await a.text()
    async with http.post(f"{base}/{account_id}/keys", json={"name": label}, headers=auth) as a:
        assert a.status == 201, await a.text()
        key: str = (await a.json())["key"]
    return account_id, key
