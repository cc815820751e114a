"""What the end-to-end tests share: the deployment's handles and small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
from aiapi_shared.money import parse_usd
from aiapi_testkit.process import ServiceProcess

ADMIN_TOKEN = "e2e-operator-token-0123456789"
# Basic plan (70% off) prices of claude-haiku-4-5 in nano-USD per token: 1 USD/MTok -> 1000 nano.
HAIKU_BASIC_INPUT_NANO = 300
HAIKU_BASIC_OUTPUT_NANO = 1500


@dataclass
class Deployment:
    edge_url: str
    accounts_url: str
    admin_url: str
    processes: list[ServiceProcess]
    env: dict[str, str] = field(default_factory=dict)
    # Each service's NATS login (a strict server: a process without one is refused).
    logins: dict[str, dict[str, str]] = field(default_factory=dict)

    def env_of(self, service: str) -> dict[str, str]:
        """The environment a process of ``service`` runs with: its own NATS user."""
        return {**self.env, **self.logins.get(service, {})}

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.admin_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def sdk(self, key: str) -> anthropic.Anthropic:
        """The official SDK pointed at the edge (the caller closes it)."""
        return anthropic.Anthropic(
            base_url=f"{self.edge_url}/api/proxy", api_key=key, max_retries=0
        )

    def probe_url(self, name: str, path: str) -> str:
        """``path`` on the internal listener of process ``name`` (billing, accounts, edge)."""
        return next(p for p in self.processes if p.log_path.stem == name).probe_url(path)

    def logs(self) -> str:
        return "\n".join(p.log_text() for p in self.processes)

    def audit(self) -> subprocess.CompletedProcess[str]:
        """Billing's auditor over the deployment's books (exit status 0: they balance)."""
        return subprocess.run(
            [sys.executable, "-m", "aiapi_billing", "audit"],
            env={**os.environ, **self.env_of("billing")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def eventually(check: Callable[[], Any], timeout_s: float = 15.0, every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every_s)


def open_account(admin: httpx.Client, credit_usd: str) -> tuple[str, str, str]:
    """A new account (an email of its own: tests may share a deployment) credited with
    ``credit_usd``, and a key of it: (account id, key id, key)."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    account = admin.post("/admin/v1/accounts", json={"email": email, "plan": "basic"})
    assert account.status_code == 201, account.text
    account_id = account.json()["id"]
    credit = admin.post(
        f"/admin/v1/accounts/{account_id}/adjustments",
        json={"amount_usd": credit_usd, "reason": "e2e top-up"},
        headers={"Idempotency-Key": f"e2e-credit-{account_id}"},
    )
    assert credit.status_code == 201, credit.text
    assert parse_usd(credit.json()["balance_usd"]) == parse_usd(credit_usd)
    key = admin.post(f"/admin/v1/accounts/{account_id}/keys", json={"name": "e2e"})
    assert key.status_code == 201, key.text
    assert key.json()["key"].startswith("sk-cc-")
    return account_id, key.json()["id"], key.json()["key"]


def account(admin: httpx.Client, account_id: str) -> dict[str, Any]:
    answer = admin.get(f"/admin/v1/accounts/{account_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def balance(admin: httpx.Client, account_id: str) -> int:
    return parse_usd(account(admin, account_id)["balance_usd"])


def available(admin: httpx.Client, account_id: str) -> int:
    return parse_usd(account(admin, account_id)["available_usd"])


# A small message the rate-limit tests send over and over.
LIMIT_BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


def traffic_on_every_edge(http: httpx.Client, edges: list[str], headers: dict[str, str]) -> None:
    """A few admitted requests on each edge: each holds a lease under the terms of now."""
    for n in range(6 * len(edges)):
        answer = http.post(f"{edges[n % len(edges)]}/v1/messages", headers=headers, json=LIMIT_BODY)
        assert answer.status_code == 200, answer.text


def refused_on_every_edge_within(
    http: httpx.Client, edges: list[str], headers: dict[str, str], seconds: float
) -> None:
    """After a lower requests/min: within ``seconds`` each edge answers 429 and, once it has,
    admits nothing more (the minute is spent at the new rate)."""
    changed = time.monotonic()
    refused = {edge: False for edge in edges}
    admitted_late = 0
    while not all(refused.values()):
        assert time.monotonic() - changed < seconds, f"still admitting: {refused}"
        for edge in edges:
            answer = http.post(f"{edge}/v1/messages", headers=headers, json=LIMIT_BODY)
            if answer.status_code == 429:
                refused[edge] = True
                assert answer.json()["error"]["type"] == "rate_limit_error"
            else:
                assert answer.status_code == 200, answer.text
                admitted_late += 1 if refused[edge] else 0
    for edge in edges:
        assert http.post(f"{edge}/v1/messages", headers=headers, json=LIMIT_BODY).status_code == 429
    assert admitted_late == 0
