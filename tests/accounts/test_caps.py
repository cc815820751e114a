"""Abuse caps of the customer API: active keys per account, account changes per minute, requests
to payments for deposit addresses. Operators are not held to them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiapi_shared import payments_api
from aiapi_shared.bus import Bus

from tests.accounts.conftest import ADMIN, PASSWORD, Running, make_settings, respond, run_app

KEYS = "/api/v1/account/keys"


async def customer(app: Running, email: str) -> tuple[httpx.AsyncClient, dict[str, str], str]:
    """A signed-in client of its own (own cookies), its CSRF header and its account id. It
    shares the app's in-process transport, which holds nothing to close."""
    client = httpx.AsyncClient(transport=app.client._transport, base_url=app.client.base_url)
    await client.post("/api/v1/auth/sign-up", json={"email": email, "password": PASSWORD})
    signed = await client.post("/api/v1/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    return client, {"x-csrf-token": body["csrf_token"]}, body["account"]["id"]


async def expire_windows(app: Running) -> None:
    """Move every rate window an hour into the past (instead of sleeping through it)."""
    assert app.service.pool is not None
    async with app.service.pool.connection() as conn:
        await conn.execute("UPDATE rate_windows SET started_at = started_at - interval '1 hour'")


async def test_active_keys_are_capped_for_customers_not_operators(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, max_keys_per_account=3)
    async with run_app(settings, bus) as app:
        client, csrf, account_id = await customer(app, "kim@example.com")
        made = await asyncio.gather(
            *(client.post(KEYS, json={"name": f"k{n}"}, headers=csrf) for n in range(8))
        )
        assert sorted(a.status_code for a in made) == [201] * 3 + [409] * 5
        refused = next(a for a in made if a.status_code == 409)
        assert refused.json()["error"]["type"] == "conflict_error"
        assert "at most 3 active API keys" in refused.json()["error"]["message"]
        listed = (await client.get(KEYS)).json()
        assert [k["status"] for k in listed] == ["active"] * 3

        # Revoked keys do not count.
        gone = await client.delete(f"{KEYS}/{listed[0]['id']}", headers=csrf)
        assert gone.status_code == 204
        assert (await client.post(KEYS, json={"name": "again"}, headers=csrf)).status_code == 201
        assert (await client.post(KEYS, json={"name": "over"}, headers=csrf)).status_code == 409

        # The operator is not capped.
        await app.new_key(account_id, "by the operator")
        active = [k for k in (await client.get(KEYS)).json() if k["status"] == "active"]
        assert len(active) == 4


async def test_account_changes_are_limited_per_minute_across_routes(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, account_writes_per_minute=5)
    async with run_app(settings, bus) as app:
        client, csrf, account_id = await customer(app, "lee@example.com")
        other, other_csrf, _ = await customer(app, "max@example.com")
        key = (await client.post(KEYS, json={"name": "a"}, headers=csrf)).json()
        assert (await client.delete(f"{KEYS}/{key['id']}", headers=csrf)).status_code == 204
        change = {"current_password": PASSWORD, "new_password": PASSWORD + "!"}
        moved = await client.post("/api/v1/account/password", json=change, headers=csrf)
        assert moved.status_code == 204
        # Two more in parallel with six others: exactly two of the eight get through.
        burst = await asyncio.gather(
            *(client.post(KEYS, json={"name": f"b{n}"}, headers=csrf) for n in range(8))
        )
        assert sorted(a.status_code for a in burst) == [201] * 2 + [429] * 6
        for what in (
            client.post("/api/v1/account/plan", json={"plan": "pro"}, headers=csrf),
            client.delete(f"{KEYS}/{key['id']}", headers=csrf),
        ):
            limited = await what
            assert limited.status_code == 429
            assert limited.json()["error"] == {
                "type": "rate_limit_error",
                "message": "at most 5 account changes per minute; try again later",
            }
            assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Reads, another account and the operator are not limited by it.
        assert (await client.get(KEYS)).status_code == 200
        assert (await other.post(KEYS, json={"name": "x"}, headers=other_csrf)).status_code == 201
        await app.new_key(account_id, "by the operator")
        # A new minute, a new budget.
        await expire_windows(app)
        assert (await client.post(KEYS, json={"name": "c"}, headers=csrf)).status_code == 201
        # Signing out is never limited.
        await expire_windows(app)
        for n in range(5):
            await client.post(KEYS, json={"name": f"d{n}"}, headers=csrf)
        out = await client.post("/api/v1/auth/sign-out", headers=csrf)
        assert out.status_code == 204


async def test_only_making_new_addresses_is_budgeted(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, deposit_address_requests_per_hour=2)
    url = "/api/v1/account/deposit-addresses"
    async with run_app(settings, bus) as app:
        early, _, _ = await customer(app, "nat@example.com")
        # Payments not running and nothing remembered: 503 (never an empty list), however
        # often: no address was made, so no budget is spent.
        assert [(await early.get(url)).status_code for _ in range(3)] == [503] * 3

        def offered(asset: str) -> dict[str, Any]:
            return {"asset": asset, "network": "ethereum", "address": "0x" + "cd" * 20,
                    "minimum_usd": "1.00", "rate_usd": "1.00", "rate_source": "par"}  # fmt: skip

        payments: dict[str, Any] = {
            "up": True, "making": True, "offers": ["ETH"], "given": {}, "made": 0
        }  # fmt: skip
        down = {"error": "unavailable", "message": "down for maintenance", "status": 503}

        def answer(query: dict[str, Any]) -> dict[str, Any]:
            if not payments["up"] or (query["allocate"] and not payments["making"]):
                return down
            if query["allocate"]:
                payments["made"] += 1
                payments["given"][query["account_id"]] = list(payments["offers"])
            mine = payments["given"].get(query["account_id"], [])
            given = [offered(a) for a in payments["offers"] if a in mine]
            return {"addresses": given, "missing": len(payments["offers"]) - len(given)}

        seen = await respond(app.bus, payments_api.ADDRESSES_SUBJECT, answer)
        client, _, account_id = await customer(app, "oda@example.com")
        answers = [(await client.get(url)).json() for _ in range(6)]
        # Each answer carries what the top-up card shows (rate, minimum), not just the address.
        assert answers == [[offered("ETH")]] * 6
        assert (payments["made"], len(seen)) == (1, 7)  # one address made, six reads
        # The operator enables USDT: its address is made within the budget (the second).
        payments["offers"].append("USDT")
        assert (await client.get(url)).json() == [offered("ETH"), offered("USDT")]
        assert payments["made"] == 2
        # A third asset once the budget is spent: the addresses given so far, with their terms.
        payments["offers"].append("USDC")
        for _ in range(3):
            assert (await client.get(url)).json() == [offered("ETH"), offered("USDT")]
        assert payments["made"] == 2
        # While payments is down, the remembered addresses still answer (they are stable).
        payments["up"] = False
        remembered = (await client.get(url)).json()
        assert [a["asset"] for a in remembered] == ["ETH", "USDT"]
        # A customer with nothing given and the budget spent: 429, payments not asked to make one.
        payments["up"] = True
        late, _, _ = await customer(app, "pat@example.com")
        payments["making"] = False  # making its addresses fails twice: the budget goes on it
        assert [(await late.get(url)).status_code for _ in range(2)] == [503] * 2
        payments["making"] = True
        spent = await late.get(url)
        assert spent.status_code == 429
        assert spent.json()["error"]["type"] == "rate_limit_error"
        assert int(spent.headers["retry-after"]) >= 1
        # The operator always asks payments to make them.
        made = payments["made"]
        assert made == 2
        for _ in range(3):
            direct = await app.admin.get(
                f"/admin/v1/accounts/{account_id}/deposit-addresses", headers=ADMIN
            )
            assert direct.status_code == 200
        assert payments["made"] == made + 3


@pytest.mark.parametrize("name", ["max_keys_per_account", "account_writes_per_minute"])
def test_caps_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make_settings("postgresql://x@localhost/x", "nats://x", **{name: 0})
