"""An edge of two worker processes in front of the real billing: every request billed exactly once,
a worker killed with SIGKILL in the middle of the traffic loses no usage (its restarted successor
publishes its spool), and in the end no lease or hold is left and the auditor finds the books
exact."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import httpx
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.money import parse_usd
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import ServiceProcess

from .conftest import deploy
from .load import REQUESTS_PER_ACCOUNT, Customer, open_customers
from .support import (
    HAIKU_BASIC_INPUT_NANO,
    HAIKU_BASIC_OUTPUT_NANO,
    Deployment,
    available,
    balance,
    eventually,
)
from .test_leases import assert_books_balance

pytestmark = pytest.mark.slow

CUSTOMERS = 6


@pytest.fixture
def two_workers(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
) -> Iterator[Deployment]:
    # A killed worker's leases are never closed: they expire (here within seconds) and the
    # money they hold returns to the accounts.
    extra = {"AIAPI_EDGE_WORKERS": "2", "AIAPI_HOLD_TTL_S": "5", "AIAPI_HOLD_SWEEP_INTERVAL_S": "1"}
    with deploy(
        database_url, strict_nats_server, nats_login, spawn, tmp_path, extra_env=extra
    ) as running:
        yield running


@dataclass
class Traffic:
    answered: dict[str, tuple[str, int]] = field(
        default_factory=dict
    )  # request id -> (account, cost)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def finished(self) -> int:
        with self.lock:
            return len(self.answered) + self.failed


def run_traffic(edge_url: str, customers: list[Customer], traffic: Traffic) -> None:
    """Requests from eight threads, each on the SDK's pooled connections (spread by the kernel
    over the workers); a request cut by the kill is counted as failed and not retried."""
    client = anthropic.Anthropic(base_url=f"{edge_url}/api/proxy", api_key="unused", max_retries=0)

    def one(n: int) -> None:
        customer = customers[n % len(customers)]
        try:
            message = client.with_options(api_key=customer.key, timeout=30).messages.create(
                model="claude-haiku-4-5",
                max_tokens=64,
                messages=[{"role": "user", "content": f"[[reply: worker load {n}]]"}],
            )
        except anthropic.APIError:
            with traffic.lock:
                traffic.failed += 1
            return
        cost = (
            message.usage.input_tokens * HAIKU_BASIC_INPUT_NANO
            + message.usage.output_tokens * HAIKU_BASIC_OUTPUT_NANO
        )
        assert message._request_id is not None
        with traffic.lock:
            traffic.answered[message._request_id] = (customer.account_id, cost)

    try:
        with ThreadPoolExecutor(8) as pool:
            for future in [
                pool.submit(one, n) for n in range(REQUESTS_PER_ACCOUNT * len(customers))
            ]:
                future.result()
    finally:
        client.close()


def workers_of(edge: ServiceProcess) -> list[int]:
    assert edge.pid is not None
    children = Path(f"/proc/{edge.pid}/task/{edge.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def billed_cost(edge_url: str, key: str, request_id: str) -> int | None:
    """What billing debited for one request (the customer's own usage route), None if nothing."""
    answer = httpx.get(
        f"{edge_url}/v1/usage/requests/{request_id}", headers={"x-api-key": key}, timeout=10
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return parse_usd(answer.json()["cost_usd"])


def test_two_workers_bill_every_request_once_through_a_worker_killed_mid_traffic(
    two_workers: Deployment,
) -> None:
    deployment = two_workers
    edge = next(p for p in deployment.processes if p.log_path.stem == "edge")
    first = workers_of(edge)
    assert len(first) == 2
    with deployment.admin() as admin:
        customers = open_customers(admin, CUSTOMERS, "5.00")
        traffic = Traffic()
        sender = threading.Thread(
            target=run_traffic, args=(deployment.edge_url, customers, traffic)
        )
        sender.start()
        deadline = time.monotonic() + 60
        while traffic.finished < 60:
            assert time.monotonic() < deadline, "no traffic"
            time.sleep(0.02)
        os.kill(first[1], signal.SIGKILL)  # mid-traffic: its spool may hold unpublished usage
        sender.join(timeout=300)
        assert not sender.is_alive()
        # The supervisor started the worker again (a new process in its place).
        eventually(lambda: len(workers_of(edge)) == 2 and first[1] not in workers_of(edge))
        assert len(traffic.answered) >= len(customers) * REQUESTS_PER_ACCOUNT - 16
        keys = {c.account_id: c.key for c in customers}

        # Every answered request is billed, at its exact cost (so once: the ledger's key is the
        # request id, and the balances below add up).
        def all_billed() -> bool:
            return all(
                billed_cost(deployment.edge_url, keys[account], request_id) == cost
                for request_id, (account, cost) in traffic.answered.items()
            )

        eventually(all_billed, timeout_s=60, every_s=1)
        # Each balance moved by what its answered requests cost, plus what requests cut by the
        # kill cost if the upstream had answered them (their usage is billed too, never twice).
        answered_cost = {c.account_id: 0 for c in customers}
        for account, cost in traffic.answered.values():
            answered_cost[account] += cost
        for customer in customers:
            spent = customer.start_nano - balance(admin, customer.account_id)
            assert spent >= answered_cost[customer.account_id]
            per_request_max = 64 * HAIKU_BASIC_OUTPUT_NANO + 100 * HAIKU_BASIC_INPUT_NANO
            assert spent - answered_cost[customer.account_id] <= traffic.failed * per_request_max
        # No hold or lease left: the live worker closed its leases, the killed one's expired.
        for customer in customers:
            eventually(
                lambda c=customer: available(admin, c.account_id) == balance(admin, c.account_id),
                timeout_s=30,
                every_s=0.5,
            )
    assert_books_balance(deployment)
    assert "edge worker died; starting it again" in deployment.logs()
