"""Plans and prices changed at run time, across the real processes and two edges: a new
requests/min for Basic is enforced on both edges within a second (the edges stop admitting under
leases granted on the old terms), and an option the catalogue could not price is accepted once
the operator prices it, billed at that price, with the cost header equal to the debit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest
from aiapi_cli.admin import admin_main
from aiapi_cli.ports import free_port
from aiapi_shared.money import parse_usd
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import internal_env

from .support import ADMIN_TOKEN, Deployment, balance, eventually, open_account

pytestmark = pytest.mark.slow

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


def second_edge(deployment: Deployment, spawn: SpawnFn, tmp_path: Path) -> str:
    port = free_port()
    env, ready = internal_env(
        {
            **deployment.env_of("edge"),
            "AIAPI_EDGE_PORT": str(port),
            "AIAPI_DATA_DIR": str(tmp_path / "second-edge"),
        }
    )
    spawn([sys.executable, "-m", "aiapi_edge"], env=env, health_url=ready, name="edge-2",
          timeout_s=60)  # fmt: skip
    return f"http://127.0.0.1:{port}"


def cli(deployment: Deployment, *argv: str) -> int:
    env = {"AIAPI_ADMIN_URL": deployment.admin_url, "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}
    return admin_main(list(argv), environ=env)


def test_basics_new_requests_per_minute_holds_on_both_edges_within_a_second(
    deployment: Deployment, spawn: SpawnFn, tmp_path: Path
) -> None:
    edges = [deployment.edge_url, second_edge(deployment, spawn, tmp_path)]
    with deployment.admin() as admin:
        _, _, key = open_account(admin, "10.00")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with httpx.Client(timeout=30) as http:
        # Traffic on both edges first: each holds a lease of Basic's 200 a minute by now.
        for n in range(12):
            answer = http.post(f"{edges[n % 2]}/v1/messages", headers=headers, json=BODY)
            assert answer.status_code == 200, answer.text
        assert cli(deployment, "plans", "set", "basic", "--rpm", "3") == 0
        changed = time.monotonic()
        refused = {edge: False for edge in edges}
        admitted_late = 0
        while not all(refused.values()):
            assert time.monotonic() - changed < 1.0, f"still admitting: {refused}"
            for edge in edges:
                answer = http.post(f"{edge}/v1/messages", headers=headers, json=BODY)
                if answer.status_code == 429:
                    refused[edge] = True
                    assert answer.json()["error"]["type"] == "rate_limit_error"
                else:
                    assert answer.status_code == 200, answer.text
                    admitted_late += 1 if refused[edge] else 0
        # Once an edge refused, it admits nothing more: the minute is spent at 3 a minute.
        for edge in edges:
            assert http.post(f"{edge}/v1/messages", headers=headers, json=BODY).status_code == 429
        assert admitted_late == 0
    with deployment.admin() as admin:
        plans = admin.get("/admin/v1/plans").json()
        basic = next(p for p in plans["plans"] if p["id"] == "basic")
        assert (basic["requests_per_minute"], basic["discount_bps"]) == (3, 7000)


def test_an_accounts_own_limit_and_a_meter_priced_at_run_time_apply_without_restart(
    deployment: Deployment,
) -> None:
    with deployment.admin() as admin:
        account_id, _, key = open_account(admin, "10.00")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    fast = {**BODY, "speed": "fast", "messages": [
        {"role": "user", "content": "[[usage: speed=fast]] [[reply: quick]]"}]}  # fmt: skip
    with httpx.Client(timeout=30) as http:
        refused = http.post(f"{deployment.edge_url}/v1/messages", headers=headers, json=fast)
        assert refused.status_code == 400
        assert "speed:fast" in refused.json()["error"]["message"]
        assert cli(deployment, "prices", "set-meter", "speed:fast", "--input-bps", "60000",
                   "--output-bps", "60000") == 0  # fmt: skip

        def accepted() -> httpx.Response | None:
            answer = http.post(f"{deployment.edge_url}/v1/messages", headers=headers, json=fast)
            return answer if answer.status_code == 200 else None

        answer = eventually(accepted, timeout_s=1.0)
        usage = answer.json()["usage"]
        # Haiku on Basic: 300 / 1500 nano per token, six times for the fast mode.
        expected = 6 * (usage["input_tokens"] * 300 + usage["output_tokens"] * 1500)
        assert parse_usd(answer.headers["aiapi-cost-usd"]) == expected
        with deployment.admin() as admin:
            eventually(lambda: balance(admin, account_id) == parse_usd("10.00") - expected)
        # The account's own requests/min: two a minute, whatever Basic allows.
        assert cli(deployment, "account-terms", account_id, "--rpm", "2") == 0
        statuses = [
            http.post(f"{deployment.edge_url}/v1/messages", headers=headers, json=BODY).status_code
            for _ in range(6)
        ]
        assert statuses.count(429) >= 4 and set(statuses) <= {200, 429}
    with deployment.admin() as admin:
        shown = admin.get(f"/admin/v1/accounts/{account_id}").json()
        assert (shown["requests_per_minute"], shown["discount_bps"]) == (2, 7000)
