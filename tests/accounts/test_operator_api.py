"""The operator API (CONTRACT.md §3): every route, its success and each of its errors.

Billing and payments are other services: where a route needs their answer, the test answers on
their request/reply subject like they would. "Payments not running" is the real thing: nobody
answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiapi_shared import apikeys, billing_api, payments_api
from aiapi_shared.bus import Bus

from tests.accounts.conftest import ADMIN, Running, make_settings, respond, run_app

BALANCE = {"balance": "12.50", "available": "10.25", "open_holds": "2.25", "version": 3}


def balance_reply(request: dict[str, Any]) -> dict[str, Any]:
    return {"account_id": request["account_id"], **BALANCE}


ROUTES = [
    ("POST", "/admin/v1/accounts"),
    ("GET", "/admin/v1/accounts/acc_x"),
    ("PATCH", "/admin/v1/accounts/acc_x"),
    ("POST", "/admin/v1/accounts/acc_x/adjustments"),
    ("POST", "/admin/v1/accounts/acc_x/keys"),
    ("DELETE", "/admin/v1/accounts/acc_x/keys/key_x"),
    ("GET", "/admin/v1/accounts/acc_x/deposit-addresses"),
    ("GET", "/admin/v1/accounts/acc_x/deposits"),
    ("POST", "/admin/v1/rates"),
    ("POST", "/admin/v1/sweep-plan"),
]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic abc", "Bearer"])
async def test_every_operator_route_requires_the_operator_token(
    running: Running, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    for method, path in ROUTES:
        answer = await running.admin.request(method, path, json={}, headers=headers)
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"]["type"] == "authentication_error"


async def test_create_account_answers_201_with_id_email_plan(running: Running) -> None:
    answer = await running.admin.post(
        "/admin/v1/accounts", json={"email": " Carol@Example.COM ", "plan": "pro"}, headers=ADMIN
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["id"].startswith("acc_")
    assert (body["email"], body["plan"], body["status"]) == ("carol@example.com", "pro", "active")
    basic = await running.admin.post(
        "/admin/v1/accounts", json={"email": "dan@example.com"}, headers=ADMIN
    )
    assert basic.json()["plan"] == "basic"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "plan": "basic"},
        {"email": "e@example.com", "plan": "gold"},
        {"plan": "basic"},
        {"email": "e@example.com", "plan": "basic", "extra": 1},
        "not json",
    ],
)
async def test_create_account_refuses_a_bad_body(running: Running, body: Any) -> None:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
    answer = await running.admin.post("/admin/v1/accounts", headers=ADMIN, **kwargs)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_create_account_with_a_taken_email_is_a_conflict(running: Running) -> None:
    await running.new_account("erin@example.com")
    answer = await running.admin.post(
        "/admin/v1/accounts", json={"email": "ERIN@example.com"}, headers=ADMIN
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["type"] == "conflict_error"


async def test_get_account_carries_plan_status_and_balances_from_billing(running: Running) -> None:
    account_id = await running.new_account()
    seen = await respond(running.bus, billing_api.ACCOUNT_SUBJECT, balance_reply)
    answer = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == account_id
    assert (body["plan"], body["status"]) == ("basic", "active")
    assert (body["balance_usd"], body["available_usd"]) == ("12.50", "10.25")
    assert body["owed_usd"] == "0.00"
    assert seen == [{"account_id": account_id}]


async def test_get_account_shows_what_an_account_below_zero_owes(running: Running) -> None:
    account_id = await running.new_account()
    below = {"balance": "-0.0044", "available": "-0.0044", "open_holds": "0", "version": 7}
    await respond(
        running.bus,
        billing_api.ACCOUNT_SUBJECT,
        lambda request: {"account_id": request["account_id"], **below},
    )
    answer = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["balance_usd"], body["owed_usd"]) == ("-0.0044", "0.0044")


async def test_get_unknown_account_is_404(running: Running) -> None:
    answer = await running.admin.get("/admin/v1/accounts/acc_missing", headers=ADMIN)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"


async def test_get_account_while_billing_is_down_is_503(running: Running) -> None:
    account_id = await running.new_account()
    answer = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "api_error"


async def test_patch_sets_plan_and_status(running: Running) -> None:
    account_id = await running.new_account()
    await respond(running.bus, billing_api.ACCOUNT_SUBJECT, balance_reply)
    url = f"/admin/v1/accounts/{account_id}"
    answer = await running.admin.patch(url, json={"plan": "pro"}, headers=ADMIN)
    assert answer.status_code == 200
    assert (answer.json()["plan"], answer.json()["balance_usd"]) == ("pro", "12.50")
    answer = await running.admin.patch(url, json={"status": "suspended"}, headers=ADMIN)
    assert (answer.json()["plan"], answer.json()["status"]) == ("pro", "suspended")
    answer = await running.admin.patch(
        url, json={"status": "active", "plan": "basic"}, headers=ADMIN
    )
    assert (answer.json()["plan"], answer.json()["status"]) == ("basic", "active")


@pytest.mark.parametrize("body", [{}, {"status": "deleted"}, {"plan": "gold"}, {"email": "x@y.z"}])
async def test_patch_refuses_a_bad_body(running: Running, body: dict[str, Any]) -> None:
    account_id = await running.new_account()
    answer = await running.admin.patch(f"/admin/v1/accounts/{account_id}", json=body, headers=ADMIN)
    assert answer.status_code == 400


async def test_patch_unknown_account_is_404(running: Running) -> None:
    answer = await running.admin.patch(
        "/admin/v1/accounts/acc_missing", json={"plan": "pro"}, headers=ADMIN
    )
    assert answer.status_code == 404


def adjust_reply(request: dict[str, Any]) -> dict[str, Any]:
    return {"transfer_id": "tr_1", "balance": "20.00", "available": "19.00", "replayed": False}


async def test_adjustment_is_201_with_the_new_balance_and_forwards_the_idempotency_key(
    running: Running,
) -> None:
    account_id = await running.new_account()
    seen = await respond(running.bus, billing_api.ADJUST_SUBJECT, adjust_reply)
    url = f"/admin/v1/accounts/{account_id}/adjustments"
    body = {"amount_usd": "10.00", "reason": "welcome credit"}
    answer = await running.admin.post(
        url, json=body, headers={**ADMIN, "Idempotency-Key": "retry-me"}
    )
    assert answer.status_code == 201
    assert answer.json()["balance_usd"] == "20.00"
    assert answer.json()["available_usd"] == "19.00"
    await running.admin.post(url, json=body, headers={**ADMIN, "Idempotency-Key": "retry-me"})
    assert seen[0]["amount"] == "10.00"
    assert seen[0]["reason"] == "welcome credit"
    # The same header gives billing the same key: billing applies it once.
    assert seen[0]["idempotency_key"] == seen[1]["idempotency_key"]
    assert "retry-me" in seen[0]["idempotency_key"]


async def test_adjustments_without_the_header_are_each_a_new_adjustment(running: Running) -> None:
    account_id = await running.new_account()
    seen = await respond(running.bus, billing_api.ADJUST_SUBJECT, adjust_reply)
    url = f"/admin/v1/accounts/{account_id}/adjustments"
    for _ in range(2):
        answer = await running.admin.post(
            url, json={"amount_usd": "-1.5", "reason": "refund"}, headers=ADMIN
        )
        assert answer.status_code == 201
    assert seen[0]["amount"] == "-1.50"
    assert seen[0]["idempotency_key"] != seen[1]["idempotency_key"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount_usd": 10.0, "reason": "float"},
        {"amount_usd": 10, "reason": "number"},
        {"amount_usd": "1e3", "reason": "exponent"},
        {"amount_usd": "0.0000000001", "reason": "too fine"},
        {"amount_usd": "1.00", "reason": ""},
        {"amount_usd": "1.00"},
    ],
)
async def test_adjustment_refuses_a_bad_body(running: Running, body: dict[str, Any]) -> None:
    account_id = await running.new_account()
    answer = await running.admin.post(
        f"/admin/v1/accounts/{account_id}/adjustments", json=body, headers=ADMIN
    )
    assert answer.status_code == 400


async def test_adjustment_passes_billing_refusals_on_and_503_when_billing_is_down(
    running: Running,
) -> None:
    account_id = await running.new_account()
    url = f"/admin/v1/accounts/{account_id}/adjustments"
    body = {"amount_usd": "-100.00", "reason": "debit"}
    down = await running.admin.post(url, json=body, headers=ADMIN)
    assert down.status_code == 503
    refusal = billing_api.ApiError(
        error="insufficient_balance", message="the balance cannot cover it", status=402
    )
    await respond(running.bus, billing_api.ADJUST_SUBJECT, lambda _: refusal)
    answer = await running.admin.post(url, json=body, headers=ADMIN)
    assert answer.status_code == 402
    assert answer.json() == {
        "error": {"type": "insufficient_balance", "message": "the balance cannot cover it"}
    }


async def test_adjustment_for_an_unknown_account_is_404(running: Running) -> None:
    answer = await running.admin.post(
        "/admin/v1/accounts/acc_missing/adjustments",
        json={"amount_usd": "1.00", "reason": "x"},
        headers=ADMIN,
    )
    assert answer.status_code == 404


async def test_issue_key_shows_a_well_formed_key_once(running: Running) -> None:
    account_id = await running.new_account()
    body = await running.new_key(account_id, "ci")
    assert body["id"].startswith("key_")
    assert apikeys.is_well_formed(body["key"])
    assert body["name"] == "ci"
    listing = await running.admin.get(f"/admin/v1/accounts/{account_id}", headers=ADMIN)
    assert body["key"] not in listing.text


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101}])
async def test_issue_key_refuses_a_bad_body(running: Running, body: dict[str, Any]) -> None:
    account_id = await running.new_account()
    answer = await running.admin.post(
        f"/admin/v1/accounts/{account_id}/keys", json=body, headers=ADMIN
    )
    assert answer.status_code == 400


async def test_issue_key_for_an_unknown_account_is_404(running: Running) -> None:
    answer = await running.admin.post(
        "/admin/v1/accounts/acc_missing/keys", json={"name": "x"}, headers=ADMIN
    )
    assert answer.status_code == 404


async def test_revoke_key_is_204_and_unknown_keys_are_404(running: Running) -> None:
    account_id = await running.new_account()
    other_id = await running.new_account("other@example.com")
    key = await running.new_key(account_id)
    url = f"/admin/v1/accounts/{account_id}/keys/{key['id']}"
    assert (await running.admin.delete(url, headers=ADMIN)).status_code == 204
    assert (await running.admin.delete(url, headers=ADMIN)).status_code == 204  # idempotent
    missing = await running.admin.delete(
        f"/admin/v1/accounts/{account_id}/keys/key_missing", headers=ADMIN
    )
    assert missing.status_code == 404
    # A key id under another account is not that account's key.
    wrong_owner = await running.admin.delete(
        f"/admin/v1/accounts/{other_id}/keys/{key['id']}", headers=ADMIN
    )
    assert wrong_owner.status_code == 404
    no_account = await running.admin.delete(
        f"/admin/v1/accounts/acc_missing/keys/{key['id']}", headers=ADMIN
    )
    assert no_account.status_code == 404


async def test_deposit_lists_are_503_while_payments_does_not_answer(running: Running) -> None:
    account_id = await running.new_account()
    for tail in ("deposit-addresses", "deposits"):
        answer = await running.admin.get(f"/admin/v1/accounts/{account_id}/{tail}", headers=ADMIN)
        assert answer.status_code == 503, tail  # never "no deposits" for money that was sent
        assert answer.json()["error"]["type"] == "api_error"


async def test_deposit_lists_are_empty_where_payments_is_not_deployed(
    database_url: str, nats_url: str, bus: Bus
) -> None:
    settings = make_settings(database_url, nats_url, payments_enabled=False)
    async with run_app(settings, bus) as running:
        account_id = await running.new_account()
        for tail in ("deposit-addresses", "deposits"):
            answer = await running.admin.get(
                f"/admin/v1/accounts/{account_id}/{tail}", headers=ADMIN
            )
            assert (answer.status_code, answer.json()) == (200, [])


async def test_deposit_lists_come_from_payments(running: Running) -> None:
    account_id = await running.new_account()
    address = {"asset": "BTC", "network": "bitcoin", "address": "bc1qexample"}
    deposit = {
        "asset": "USDT",
        "network": "ethereum",
        "tx_hash": "0xabc",
        "position": 3,
        "amount": "25.5",
        "confirmations": 12,
        "state": "credited",
        "usd": "25.50",
    }
    await respond(running.bus, payments_api.ADDRESSES_SUBJECT, lambda _: {"addresses": [address]})
    await respond(running.bus, payments_api.DEPOSITS_SUBJECT, lambda _: {"deposits": [deposit]})
    base = f"/admin/v1/accounts/{account_id}"
    addresses = await running.admin.get(f"{base}/deposit-addresses", headers=ADMIN)
    assert addresses.json() == [address]
    deposits = (await running.admin.get(f"{base}/deposits", headers=ADMIN)).json()
    assert len(deposits) == 1
    assert {k: deposits[0][k] for k in deposit} == deposit


async def test_deposit_lists_of_an_unknown_account_are_404(running: Running) -> None:
    for tail in ("deposit-addresses", "deposits"):
        answer = await running.admin.get(f"/admin/v1/accounts/acc_missing/{tail}", headers=ADMIN)
        assert answer.status_code == 404


async def test_set_rate_is_503_while_payments_is_not_running(running: Running) -> None:
    answer = await running.admin.post(
        "/admin/v1/rates", json={"asset": "ETH", "usd": "3000.00"}, headers=ADMIN
    )
    assert answer.status_code == 503


async def test_set_rate_forwards_to_payments_and_answers_201(running: Running) -> None:
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        return {**request, "set_at": datetime(2026, 11, 27, tzinfo=UTC).isoformat()}

    seen = await respond(running.bus, payments_api.SET_RATE_SUBJECT, reply)
    answer = await running.admin.post(
        "/admin/v1/rates", json={"asset": "ETH", "usd": "3000.00"}, headers=ADMIN
    )
    assert answer.status_code == 201
    assert (answer.json()["asset"], answer.json()["usd"]) == ("ETH", "3000.00")
    assert (seen[0]["asset"], seen[0]["usd"]) == ("ETH", "3000.00")


@pytest.mark.parametrize(
    "body", [{"asset": "DOGE", "usd": "1.00"}, {"asset": "BTC", "usd": 60000}, {"asset": "BTC"}]
)
async def test_set_rate_refuses_a_bad_body(running: Running, body: dict[str, Any]) -> None:
    answer = await running.admin.post("/admin/v1/rates", json=body, headers=ADMIN)
    assert answer.status_code == 400


async def test_the_sweep_plan_forwards_the_destinations_and_passes_refusals_on(
    running: Running,
) -> None:
    plan = {
        "format": "aiapi-sweep-plan/1",
        "unsigned": True,
        "created_at": datetime(2026, 12, 7, tzinfo=UTC).isoformat(),
        "destinations": {"evm": "0x" + "ab" * 20},
        "transfers": [
            {
                "network": "base",
                "asset": "USDC",
                "contract": "0x" + "11" * 20,
                "address": "0x" + "22" * 20,
                "derivation_path": "m/44'/60'/0'/0/1",
                "amount": "12.5",
                "amount_base_units": "12500000",
                "to": "0x" + "ab" * 20,
            }
        ],
        "needs_gas": [],
        "totals": [{"network": "base", "asset": "USDC", "amount": "12.5"}],
        "unreachable": [],
    }

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if request["destinations"].get("evm") == "0x1234":
            return {
                "error": "invalid_request",
                "message": "the evm destination is not a valid address",
                "status": 400,
            }
        return plan

    seen = await respond(running.bus, payments_api.SWEEP_PLAN_SUBJECT, reply)
    body = {"destinations": {"evm": "0x" + "ab" * 20}}
    answer = await running.admin.post("/admin/v1/sweep-plan", json=body, headers=ADMIN)
    assert (answer.status_code, answer.json()["transfers"]) == (200, plan["transfers"])
    assert seen[0] == body
    refused = await running.admin.post(
        "/admin/v1/sweep-plan", json={"destinations": {"evm": "0x1234"}}, headers=ADMIN
    )
    assert refused.status_code == 400
    assert "evm destination" in refused.json()["error"]["message"]
    unknown = await running.admin.post(
        "/admin/v1/sweep-plan", json={"destinations": {"doge": "D…"}}, headers=ADMIN
    )
    assert unknown.status_code == 400


async def test_openapi_and_docs_are_served(running: Running) -> None:
    spec = (await running.admin.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]["/admin/v1/accounts/{id}"]) == {"get", "patch"}
    assert "201" in spec["paths"]["/admin/v1/accounts/{id}/adjustments"]["post"]["responses"]
    assert "AdjustmentBody" in spec["components"]["schemas"]
    docs = await running.admin.get("/docs")
    assert docs.status_code == 200
    assert "/admin/v1/rates" in docs.text
    assert "/api/v1/" not in docs.text  # the customer API is documented on its own port


async def test_unknown_routes_and_methods_answer_json_errors(running: Running) -> None:
    missing = await running.admin.get("/admin/v1/nothing", headers=ADMIN)
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found_error")
    wrong = await running.admin.put("/admin/v1/accounts", headers=ADMIN)
    assert wrong.status_code == 405
    assert "error" in wrong.json()
