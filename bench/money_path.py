"""The whole money path: requests/s with every request settled, and what the edge adds.

Everything runs on loopback, each in its own process as ``aiapi up`` runs it: an embedded
PostgreSQL (fsync on) and nats-server, the simulator, billing, accounts and the edge. Accounts
are made the real way, through the accounts operator API (create on the Pro plan, credit by an
adjustment, issue a key), so the edge learns the keys from accounts' KV records and billing
holds the balances. Then N requests at a fixed concurrency go through the edge (aiohttp,
keep-alive), spread over the keys; the clock stops when billing's balances reflect every one of
them, and the final balances must equal start − Σ cost exactly, where each cost is recomputed
here from the usage the response reported, in exact fractions (not with billing's code). The
same run measures the simulator directly, so every figure has its own baseline. Usage::

    .venv/bin/python bench/money_path.py [--requests 10000] [--concurrency 64] [--accounts 40]

Prints: requests/s through the edge with every request settled, and the direct simulator's
requests/s; p50/p99 latency at the chosen concurrency and at concurrency 1 (edge and direct, and
the difference), and at concurrency 1 again once accounts' usage consumer is deleted (the
last measurement; it isolates what that consumer costs the edge's latency); the CPU seconds each
process spent during the loaded run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiapi_shared.bus import Bus
from aiapi_shared.money import format_usd, parse_usd
from aiapi_testkit import books
from aiapi_testkit.stack import UPSTREAM_KEY, LocalStack, start_stack
from customers import open_account

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL = "claude-haiku-4-5"
PLAN = "pro"
BODY = orjson.dumps(
    {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark [[reply: ok]]"}],
    }
)
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
START_USD = "100.00"
ACCOUNTS_USAGE_CONSUMER = "accounts-key-last-used"


# -- processes ------------------------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> dict[int, float]:
    """CPU time (user + system) of a process and each of its live descendants, by pid."""
    spent: dict[int, float] = {}
    for pid in _descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        spent[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return spent


# -- accounts, the real way -----------------------------------------------------------------


@dataclass
class Customer:
    account_id: str
    key: str


async def make_customers(
    http: aiohttp.ClientSession, stack: LocalStack, count: int
) -> list[Customer]:
    async def one(i: int) -> Customer:
        made = await open_account(http, stack, label=f"bench{i}", plan=PLAN, credit_usd=START_USD)
        return Customer(*made)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def balances(
    http: aiohttp.ClientSession, stack: LocalStack, customers: list[Customer]
) -> dict[str, tuple[int, int]]:
    """Each account's (balance, available) as billing holds them, read through accounts."""
    auth = {"authorization": f"Bearer {stack.admin_token}"}

    async def one(c: Customer) -> tuple[str, tuple[int, int]]:
        url = f"{stack.admin_url}/admin/v1/accounts/{c.account_id}"
        async with http.get(url, headers=auth) as answer:
            assert answer.status == 200, await answer.text()
            body = await answer.json()
        return c.account_id, (parse_usd(body["balance_usd"]), parse_usd(body["available_usd"]))

    return dict(await asyncio.gather(*(one(c) for c in customers)))


# -- the cost of a response, computed independently ----------------------------------------


def expected_cost(usage: dict[str, Any]) -> int:
    """Nano-USD: the contract's meters in exact fractions, rounded up once (not billing's code)."""
    return books.expected_cost(MODEL, PLAN, books.meters_of(usage))


# -- load -----------------------------------------------------------------------------------

Shot = Callable[[aiohttp.ClientSession, int], Awaitable[tuple[float, int, int]]]


def shot_to(url: str, keys: list[str]) -> Shot:
    """POST /v1/messages with the i-th key; returns (seconds, status, cost in nano-USD)."""

    async def shot(http: aiohttp.ClientSession, i: int) -> tuple[float, int, int]:
        headers = {**HEADERS, "x-api-key": keys[i % len(keys)]}
        started = time.perf_counter()
        async with http.post(url + "/v1/messages", data=BODY, headers=headers) as answer:
            raw = await answer.read()
            status = answer.status
        elapsed = time.perf_counter() - started
        cost = expected_cost(orjson.loads(raw)["usage"]) if status == 200 else 0
        return elapsed, status, cost

    return shot


@dataclass
class Run:
    latencies: list[float]
    statuses: dict[int, int]
    cost: int
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def drive(shot: Shot, *, count: int, concurrency: int) -> Run:
    connector = aiohttp.TCPConnector(limit=0)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cost = 0
    async with aiohttp.ClientSession(connector=connector) as http:
        issued = 0

        async def worker() -> None:
            nonlocal issued, cost
            while issued < count:
                i = issued
                issued += 1
                seconds, status, price = await shot(http, i)
                latencies.append(seconds)
                statuses[status] = statuses.get(status, 0) + 1
                cost += price

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Run(latencies, statuses, cost, time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def wait_settled(
    http: aiohttp.ClientSession,
    stack: LocalStack,
    customers: list[Customer],
    expected: dict[str, int],
    timeout_s: float = 180.0,
    *,
    released: bool = False,
) -> dict[str, tuple[int, int]]:
    """Until every balance is the expected one (bounded): every request settled. With
    ``released``, until no hold is left as well: the edge hands its admission leases back
    when their window ends (10 s), which is not part of settling the requests."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = await balances(http, stack, customers)
        if all(now[a][0] == b and (not released or now[a][1] == b) for a, b in expected.items()):
            return now
        if time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


async def wait_quiet(
    http: aiohttp.ClientSession, stack: LocalStack, customers: list[Customer]
) -> dict[str, tuple[int, int]]:
    """The books once the warm-up settled: no hold open, two readings 0.5 s apart equal."""
    last: dict[str, tuple[int, int]] = {}
    for _ in range(120):
        now = await balances(http, stack, customers)
        if now == last and all(b == a for b, a in now.values()):
            return now
        last = now
        await asyncio.sleep(0.5)
    raise RuntimeError("the warm-up never settled")


def latency_line(label: str, direct: Run, edge: Run) -> str:
    d50, d99, e50, e99 = (pct(r.latencies, q) for r in (direct, edge) for q in (0.5, 0.99))
    return (
        f"{label:<22} direct p50 {d50:6.2f} p99 {d99:6.2f} ms | edge p50 {e50:6.2f} p99"
        f" {e99:6.2f} ms | edge adds p50 {e50 - d50:+.2f} ms, p99 {e99 - d99:+.2f} ms"
    )


async def warm_up(edge: Shot, keys: list[str]) -> None:
    """One request per key until all pass: the edge learns keys from accounts' KV records."""
    for _ in range(100):
        warm = await drive(edge, count=len(keys), concurrency=8)
        if warm.statuses.get(200) == len(keys):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the edge never accepted every key: {warm.statuses}")


def cpu_snapshot(stack: LocalStack) -> dict[str, dict[int, float]]:
    roots = {name: p.pid or 0 for name, p in stack.procs.items()}
    roots["postgres"] = stack.pg.pid or 0
    roots["nats"] = stack.nats.pid or 0
    return {name: cpu_seconds(pid) for name, pid in roots.items()}


async def bench(stack: LocalStack, requests: int, concurrency: int, accounts: int) -> bool:
    async with aiohttp.ClientSession() as http:
        customers = await make_customers(http, stack, accounts)
        keys = [c.key for c in customers]
        edge, direct = shot_to(stack.edge_url, keys), shot_to(stack.sim_url, [UPSTREAM_KEY])
        await warm_up(edge, keys)
        await drive(direct, count=500, concurrency=concurrency)
        before = await wait_quiet(http, stack, customers)

        direct_run = await drive(direct, count=requests, concurrency=concurrency)
        cpu_before = cpu_snapshot(stack)
        started = time.perf_counter()
        through = await drive(edge, count=requests, concurrency=concurrency)
        answered_at = time.perf_counter()
        expected = _expected_after({a: b for a, (b, _) in before.items()}, through, customers)
        await wait_settled(http, stack, customers, expected)
        settled_at = time.perf_counter()
        cpu_after = cpu_snapshot(stack)
        after = await wait_settled(http, stack, customers, expected, released=True)

        c1_direct = await drive(direct, count=1000, concurrency=1)
        c1_edge = await drive(edge, count=1000, concurrency=1)
        # The same, once accounts' usage consumer (keys' last-used times) is gone: it is what
        # the edge's latency at concurrency 1 depends on (docs/billing.md, Benchmark).
        bus = await Bus.connect(stack.nats.url, name="bench", options=stack.admin_options())
        try:
            await bus.js.delete_consumer("USAGE", ACCOUNTS_USAGE_CONSUMER)
        finally:
            await bus.close()
        await asyncio.sleep(1.0)
        c1_bare = await drive(edge, count=1000, concurrency=1)

    moved = sum(b for b, _ in before.values()) - sum(b for b, _ in after.values())
    ok = through.statuses == {200: requests} and moved == through.cost
    ok = ok and all(after[a] == (b, b) for a, b in expected.items())
    settled_rate = requests / (settled_at - started)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {requests} requests, "
          f"concurrency {concurrency}, {accounts} Pro accounts, model {MODEL}\n")  # fmt: skip
    print(f"direct simulator:             {direct_run.rate:7,.0f} requests/s")
    print(
        f"edge, answered:               {through.rate:7,.0f} requests/s"
        f" ({through.rate / direct_run.rate:.0%} of direct); statuses {through.statuses}"
    )
    print(
        f"edge, every request settled:  {settled_rate:7,.0f} requests/s"
        f" ({settled_rate / direct_run.rate:.0%} of direct); the last settled"
        f" {settled_at - answered_at:.2f} s after the last answer"
    )
    print(
        f"books: balances moved by {format_usd(moved)} USD, the responses' usage costs"
        f" {format_usd(through.cost)} USD: {'exact, no hold left' if ok else 'MISMATCH'}"
    )
    print(latency_line(f"c={concurrency}", direct_run, through))
    print(latency_line("c=1", c1_direct, c1_edge))
    print(latency_line("c=1, no acct. consumer", c1_direct, c1_bare))
    window = settled_at - started
    print(f"\nCPU seconds over the edge run until all settled ({window:.2f} s), by process:")
    for name, now in cpu_after.items():
        spent = sum(t - cpu_before[name].get(pid, 0.0) for pid, t in now.items())
        print(f"  {name:<10} {spent:6.2f} s  ({spent / window:4.0%} of one core)")
    return ok


def _expected_after(start: dict[str, int], run: Run, customers: list[Customer]) -> dict[str, int]:
    """Every request of the run costs the same (same body, same usage): spread it by key."""
    count = len(run.latencies)
    per_request, remainder = divmod(run.cost, count)
    assert remainder == 0, "requests of one body should cost the same"
    uses = {c.account_id: 0 for c in customers}
    for i in range(count):
        uses[customers[i % len(customers)].account_id] += 1
    return {a: start[a] - uses[a] * per_request for a in start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=40, help="Pro allows 500 requests/min")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiapi-money-path-") as tmp:
        data = Path(tmp)
        data.chmod(0o755)
        stack = start_stack(data)
        try:
            ok = uvloop.run(bench(stack, args.requests, args.concurrency, args.accounts))
        finally:
            stack.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
