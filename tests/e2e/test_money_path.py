"""The whole product across processes: operator API → key → edge → upstream → settlement → balance.

Real NATS, real PostgreSQL, billing, accounts and the edge as subprocesses, the simulator as the
upstream, the official SDKs as clients. This is the contract a reseller relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import httpx
import openai
import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.bus import Bus
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, BalanceSnapshot
from aiapi_shared.money import parse_usd
from aiapi_testkit.plugin import admin_options

from .support import (
    HAIKU_BASIC_INPUT_NANO,
    HAIKU_BASIC_OUTPUT_NANO,
    Deployment,
    eventually,
    open_account,
)
from .support import balance as account_balance

pytestmark = pytest.mark.slow

# The tests that add only an account of their own share one deployment (``shared_deployment``);
# one that changes the catalogue or reads the deployment's NATS directly has its own.


def test_a_request_lowers_the_balance_by_its_exact_price(
    shared_deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    with shared_deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        start = account_balance(admin, account_id)
        assert start == 10_000_000_000

        client = closer.enter_context(shared_deployment.sdk(key))
        # The SDK's retry/stream helpers read the same key from the env in other tests: stay explicit.
        message = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "[[reply: priced to the nano]]"}],
        )
        assert message.content[0].text == "priced to the nano"  # type: ignore[union-attr]
        cost = (
            message.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
            + message.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
        )
        assert cost > 0
        eventually(lambda: account_balance(admin, account_id) == start - cost)

        request_id = message._request_id
        assert request_id
        record = httpx.get(
            f"{shared_deployment.edge_url}/v1/usage/requests/{request_id}",
            headers={"x-api-key": key},
            timeout=10,
        )
        assert record.status_code == 200, record.text
        assert parse_usd(record.json()["cost_usd"]) == cost
        assert record.json()["usage"]["output_tokens"] == message.usage.output_tokens


def test_the_openai_routes_are_billed_like_the_anthropic_route(
    shared_deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    with shared_deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        start = account_balance(admin, account_id)
        claude = closer.enter_context(shared_deployment.sdk(key))
        message = claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "[[reply: same price]]"}],
        )
        eventually(lambda: account_balance(admin, account_id) < start)
        after_anthropic = account_balance(admin, account_id)

        gpt = closer.enter_context(
            openai.OpenAI(
                base_url=f"{shared_deployment.edge_url}/api/proxy/v1", api_key=key, max_retries=0
            )
        )
        completion = gpt.chat.completions.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "[[reply: same price]]"}],
        )
        assert completion.choices[0].message.content == "same price"
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == message.usage.input_tokens
        eventually(lambda: account_balance(admin, account_id) < after_anthropic)
        after_chat = account_balance(admin, account_id)
        assert start - after_anthropic == after_anthropic - after_chat

        response = gpt.responses.create(
            model="claude-haiku-4-5",
            max_output_tokens=100,
            input=[{"role": "user", "content": "[[reply: same price]]"}],
            store=False,
        )
        assert response.output_text == "same price"
        assert response.usage is not None
        assert response.usage.input_tokens == message.usage.input_tokens
        eventually(lambda: account_balance(admin, account_id) < after_chat)
        assert start - after_anthropic == after_chat - account_balance(admin, account_id)


def test_revoked_keys_and_suspended_accounts_stop_within_a_second(
    shared_deployment: Deployment,
) -> None:
    with shared_deployment.admin() as admin:
        account_id, key_id, key = open_account(admin, "5.00")
        second = admin.post(f"/admin/v1/accounts/{account_id}/keys", json={"name": "second"})
        assert second.status_code == 201
        second_key = second.json()["key"]

        def status_with(api_key: str) -> int:
            return httpx.post(
                f"{shared_deployment.edge_url}/v1/messages/count_tokens",
                headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
                json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
                timeout=10,
            ).status_code

        eventually(lambda: status_with(key) == 200)
        assert admin.delete(f"/admin/v1/accounts/{account_id}/keys/{key_id}").status_code == 204
        # The contract's promise: refused within one second on every replica.
        eventually(lambda: status_with(key) == 401, timeout_s=1.0, every_s=0.02)
        assert status_with(second_key) == 200

        patched = admin.patch(f"/admin/v1/accounts/{account_id}", json={"status": "suspended"})
        assert patched.status_code == 200
        eventually(lambda: status_with(second_key) == 401, timeout_s=1.0, every_s=0.02)

    logs = shared_deployment.logs()
    assert logs  # the services did log
    assert "sk-cc-" not in logs
    assert key not in logs


def test_a_customer_upgrade_to_pro_debits_19_usd_once_and_prices_the_next_request_at_pro(
    shared_deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    customer = httpx.Client(base_url=shared_deployment.accounts_url, timeout=10)
    email, password = "upgrade@example.com", "a long enough passphrase"
    assert (
        customer.post(
            "/api/v1/auth/sign-up", json={"email": email, "password": password}
        ).status_code
        == 202
    )
    signed_in = customer.post("/api/v1/auth/sign-in", json={"email": email, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    account_id = signed_in.json()["account"]["id"]
    with shared_deployment.admin() as admin:
        credit = admin.post(
            f"/admin/v1/accounts/{account_id}/adjustments",
            json={"amount_usd": "25.00", "reason": "e2e top-up"},
            headers={"Idempotency-Key": "e2e-upgrade-credit"},
        )
        assert credit.status_code == 201, credit.text
        key = customer.post("/api/v1/account/keys", json={"name": "cli"}, headers=csrf)
        assert key.status_code == 201, key.text
        client = closer.enter_context(shared_deployment.sdk(key.json()["key"]))

        upgrade = customer.post("/api/v1/account/plan", json={"plan": "pro"}, headers=csrf)
        assert upgrade.status_code == 200, upgrade.text
        again = customer.post("/api/v1/account/plan", json={"plan": "pro"}, headers=csrf)
        assert again.status_code == 200
        assert again.json()["already_owned"] is True
        assert account_balance(admin, account_id) == 6_000_000_000  # 25.00 - 19.00, once

        # Pro prices haiku at 80% off: 0.20 / 1.00 USD per MTok -> 200 / 1000 nano per token.
        def pro_request_cost() -> int:
            message = client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "[[reply: at the pro price]]"}],
            )
            return message.usage.input_tokens * 200 + message.usage.output_tokens * 1000

        # The plan reaches the edge through the key records within a second; the contract
        # promises the Pro discount from the next request after that.
        time.sleep(1.0)
        cost = pro_request_cost()
        eventually(lambda: account_balance(admin, account_id) == 6_000_000_000 - cost)
    customer.close()


def test_an_operator_sells_a_new_model_and_an_alias_without_a_deploy(
    deployment: Deployment, closer: contextlib.ExitStack
) -> None:
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        added = admin.put(
            "/admin/v1/catalogue/models/claude-next-5",
            json={
                "display_name": "Claude Next 5",
                "context_window": 400000,
                "max_output_tokens": 32000,
                "input_usd_per_mtok": "2.00",
                "output_usd_per_mtok": "10.00",
            },
        )
        assert added.status_code == 200, added.text
        aliased = admin.put(
            "/admin/v1/catalogue/aliases/claude-next", json={"target": "claude-next-5"}
        )
        assert aliased.status_code == 200, aliased.text
        assert aliased.json()["catalogue"]["aliases"]["claude-next"] == "claude-next-5"
        refused = admin.put("/admin/v1/catalogue/aliases/x", json={"target": "no-such-model"})
        assert refused.status_code == 404, refused.text
        typo = admin.put(
            "/admin/v1/catalogue/models/claude-next-5",
            json={"display_name": "x", "context_window": 1, "max_output_tokens": 1, "input": "1"},
        )
        assert typo.status_code == 400, typo.text
        assert "input" in typo.json()["error"]["message"]
        unpriced = admin.put(
            "/admin/v1/catalogue/models/claude-unpriced",
            json={"display_name": "x", "context_window": 1000, "max_output_tokens": 100},
        )
        assert unpriced.status_code == 400, unpriced.text

        def listed() -> bool:
            answer = httpx.get(
                f"{deployment.edge_url}/v1/models", headers={"x-api-key": key}, timeout=10
            )
            return "claude-next-5" in {m["id"] for m in answer.json()["data"]}

        eventually(listed, timeout_s=10)
        start = account_balance(admin, account_id)
        client = closer.enter_context(deployment.sdk(key))
        message = client.messages.create(
            model="claude-next",
            max_tokens=50,
            messages=[{"role": "user", "content": "[[reply: served as claude-next-5]]"}],
        )
        assert message.content[0].text == "served as claude-next-5"  # type: ignore[union-attr]
        # Basic plan: 70% off 2.00 / 10.00 USD per MTok -> 600 / 3000 nano per token.
        cost = message.usage.input_tokens * 600 + message.usage.output_tokens * 3000
        eventually(lambda: account_balance(admin, account_id) == start - cost)
        record = httpx.get(
            f"{deployment.edge_url}/v1/usage/requests/{message._request_id}",
            headers={"x-api-key": key},
            timeout=10,
        )
        assert record.json()["model"] == "claude-next-5"


async def _published_balance(nats: EmbeddedNats, users: NatsUsers, account_id: str) -> int | None:
    """The balance billing last published for the account (the snapshot the edge mirrors)."""
    bus = await Bus.connect(nats.url, name="aiapi-test-balances", options=admin_options(users))
    seen: dict[str, bytes | None] = {}
    ready, stop = asyncio.Event(), asyncio.Event()
    watch = asyncio.create_task(
        bus.watch_kv(BALANCES_BUCKET, seen.__setitem__, ready=ready, stop=stop)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
    finally:
        stop.set()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await bus.close()
    value = seen.get(account_id)
    return None if value is None else BalanceSnapshot.model_validate_json(value).balance


def test_the_cost_and_balance_headers_equal_the_settled_debit_and_balance_on_every_route(
    deployment: Deployment,
    closer: contextlib.ExitStack,
    strict_nats_server: EmbeddedNats,
    nats_users: NatsUsers,
) -> None:
    """One request at a time (nothing else in flight, the plain case of ``aiapi-balance-usd``),
    read through the official SDKs' raw response API: ``aiapi-cost-usd`` is the debit billing
    settles, ``aiapi-balance-usd`` the balance it settles to."""
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
        claude = closer.enter_context(deployment.sdk(key))
        gpt = closer.enter_context(
            openai.OpenAI(
                base_url=f"{deployment.edge_url}/api/proxy/v1", api_key=key, max_retries=0
            )
        )
        search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}

        def anthropic_call(text: str) -> Mapping[str, str]:
            raw = claude.messages.with_raw_response.create(
                model="claude-sonnet-4-6",
                max_tokens=100,
                messages=[{"role": "user", "content": text}],
                tools=[search],  # type: ignore[list-item]
            )
            return raw.headers

        def chat_call() -> Mapping[str, str]:
            raw = gpt.chat.completions.with_raw_response.create(
                model="claude-haiku-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "[[reply: chat]]"}],
            )
            return raw.headers

        def responses_call() -> Mapping[str, str]:
            raw = gpt.responses.with_raw_response.create(
                model="claude-haiku-4-5",
                max_output_tokens=100,
                input=[{"role": "user", "content": "[[reply: responses]]"}],
                store=False,
            )
            return raw.headers

        calls = [
            lambda: anthropic_call("[[usage: web_search_requests=2]] [[reply: searched]]"),
            lambda: anthropic_call("[[usage: input_tokens=250000 inference_geo=us]] long"),
            chat_call,
            responses_call,
        ]
        for call in calls:
            before = account_balance(admin, account_id)

            def published(expected: int = before) -> bool:
                seen = asyncio.run(_published_balance(strict_nats_server, nats_users, account_id))
                return seen == expected

            def settled(previous: int = before) -> bool:
                return account_balance(admin, account_id) != previous

            # The edge has heard billing's settled balance (its KV snapshot) before the request.
            eventually(published)
            headers = call()
            request_id, quoted = headers["request-id"], parse_usd(headers["aiapi-cost-usd"])
            left = parse_usd(headers["aiapi-balance-usd"])
            assert quoted > 0
            assert left == before - quoted
            eventually(settled)
            assert before - account_balance(admin, account_id) == quoted
            assert account_balance(admin, account_id) == left
            record = httpx.get(
                f"{deployment.edge_url}/v1/usage/requests/{request_id}",
                headers={"x-api-key": key},
                timeout=10,
            )
            assert parse_usd(record.json()["cost_usd"]) == quoted, record.text
