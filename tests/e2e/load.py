"""Load for the end-to-end tests: accounts enough to stay under the plan's rate limit, requests sent
from threads through the official SDK, and the exact-books check of a finished run."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import anthropic
import httpx
from aiapi_shared.bus import Bus
from aiapi_shared.money import parse_usd
from aiapi_shared.settings import NatsConnectOptions

from .support import HAIKU_BASIC_INPUT_NANO, HAIKU_BASIC_OUTPUT_NANO, balance

# The Basic plan allows 200 requests a minute per account; a run spreads over this many
# requests per account at most, so that no request of the load is refused for its rate.
REQUESTS_PER_ACCOUNT = 40


@dataclass
class Customer:
    account_id: str
    key: str
    start_nano: int
    spent_nano: int = 0
    answered: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class Outcomes:
    """Every finished request in the order it finished: True answered, False failed."""

    finished: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.finished)


def open_customers(admin: httpx.Client, count: int, credit_usd: str) -> list[Customer]:
    customers = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:12]
        created = admin.post(
            "/admin/v1/accounts", json={"email": f"load-{tag}@example.com", "plan": "basic"}
        )
        assert created.status_code == 201, created.text
        account_id = created.json()["id"]
        credit = admin.post(
            f"/admin/v1/accounts/{account_id}/adjustments",
            json={"amount_usd": credit_usd, "reason": "load"},
            headers={"Idempotency-Key": f"load-{tag}"},
        )
        assert credit.status_code == 201, credit.text
        key = admin.post(f"/admin/v1/accounts/{account_id}/keys", json={"name": "load"})
        assert key.status_code == 201, key.text
        customers.append(
            Customer(account_id, key.json()["key"], parse_usd(credit.json()["balance_usd"]))
        )
    return customers


def send(
    edge_urls: Sequence[str],
    customers: Sequence[Customer],
    per_customer: int,
    *,
    outcomes: Outcomes | None = None,
    threads: int = 8,
) -> Outcomes:
    """Send ``per_customer`` requests for every customer, round robin over the edges; record each
    answered request's exact cost (its usage at the Basic plan's haiku prices). A request that
    fails (an edge or NATS node going away mid-request) is recorded as failed, not retried here:
    a failed request must not be billed, an answered one exactly once."""
    outcomes = outcomes if outcomes is not None else Outcomes()
    clients = [
        anthropic.Anthropic(base_url=f"{url}/api/proxy", api_key="unused", max_retries=0)
        for url in edge_urls
    ]

    def one(n: int, customer: Customer) -> None:
        client = clients[n % len(clients)].with_options(api_key=customer.key, timeout=30)
        try:
            message = client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": f"[[reply: load {n}]]"}],
            )
        except anthropic.APIError as exc:
            with outcomes.lock:
                customer.failed.append(type(exc).__name__)
                outcomes.finished.append(False)
            return
        cost = (
            message.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
            + message.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
        )
        with outcomes.lock:
            customer.answered += 1
            customer.spent_nano += cost
            outcomes.finished.append(True)

    try:
        with ThreadPoolExecutor(threads) as pool:
            futures = [
                pool.submit(one, n, customers[n % len(customers)])
                for n in range(per_customer * len(customers))
            ]
            for future in futures:
                future.result()
    finally:
        for client in clients:
            client.close()
    return outcomes


def books_exact(admin: httpx.Client, customers: Sequence[Customer]) -> bool:
    """Every customer's balance moved by exactly the sum of its answered requests' costs."""
    return all(balance(admin, c.account_id) == c.start_nano - c.spent_nano for c in customers)


async def _stream_state(url: str, options: NatsConnectOptions) -> dict[str, tuple[int, int]]:
    bus = await Bus.connect(url, name="aiapi-test-streams", options=options)
    try:
        return {
            info.config.name: (int(info.state.bytes), int(info.state.messages))
            for info in await bus.js.streams_info()
        }
    finally:
        await bus.close()


def streams(url: str, options: NatsConnectOptions) -> dict[str, tuple[int, int]]:
    """(bytes, messages) of every stream (``options``: a login that may read them all)."""
    return asyncio.run(_stream_state(url, options))
