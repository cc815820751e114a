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
the difference), the same load and latency with the meters beyond tokens (a server tool the edge
checks, a search and a region billed: ``METERED_BODY``), and at concurrency 1 again once
accounts' usage consumer is deleted (the
last measurement; it isolates what that consumer costs the edge's latency); the CPU seconds each
process spent during the loaded run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.money import format_usd, parse_usd
from aiapi_shared.nats_permissions import ADMIN_USER, SERVICES
from aiapi_shared.settings import NatsConnectOptions
from aiapi_testkit.books import balances_after, exact
from aiapi_testkit.process import ServiceProcess, internal_env
from pydantic import SecretStr

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL = "claude-haiku-4-5"
PLAN = "pro"
UPSTREAM_KEY = "sk-ant-simulator-local"
BODY = orjson.dumps(
    {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark [[reply: ok]]"}],
    }
)
# The same request with the meters beyond tokens: a server tool the edge checks is priced, a
# search and a region the upstream reports, priced by billing and quoted in aiapi-cost-usd.
METERED_BODY = orjson.dumps(
    {
        "model": MODEL,
        "max_tokens": 64,
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
        "messages": [
            {
                "role": "user",
                "content": "Benchmark [[usage: web_search_requests=1 inference_geo=us]]"
                " [[reply: ok]]",
            }
        ],
    }
)
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
START_USD = "100.00"
ACCOUNTS_USAGE_CONSUMER = "accounts-key-last-used"


# -- processes ------------------------------------------------------------------------------


@dataclass
class Stack:
    data: Path
    pg: EmbeddedPostgres
    nats: EmbeddedNats
    procs: dict[str, ServiceProcess]
    sim_url: str = ""
    edge_url: str = ""
    admin_url: str = ""  # the operator API (accounts, AIAPI_ADMIN_PORT)
    admin_token: str = ""
    nats_users: NatsUsers | None = None

    def start(self, name: str, argv: list[str], env: dict[str, str], health: str) -> None:
        if self.nats_users is not None and name in SERVICES:
            env = {**env, **self.nats_users.env(name)}
        proc = ServiceProcess(argv, env=env, health_url=health, log_path=self.data / f"{name}.log")
        self.procs[name] = proc
        proc.start(timeout_s=60)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop(timeout_s=20)
        self.nats.stop()
        self.pg.stop()


def start_stack(data: Path) -> Stack:
    pg = EmbeddedPostgres(data / "pg", durable=True)
    users = NatsUsers.generate()  # as in production: each service its own NATS user
    nats = EmbeddedNats(data / "nats", authorization=users.server_config())
    pg.start()
    nats.start()
    stack = Stack(data, pg, nats, {}, admin_token=secrets.token_urlsafe(24), nats_users=users)
    sim_port, admin_port, accounts_port, edge_port = (free_port() for _ in range(4))
    common = {
        "AIAPI_NATS_URL": nats.url,
        "AIAPI_DATABASE_URL": pg.url,
        "AIAPI_DATA_DIR": str(data / "services"),
        "AIAPI_ADMIN_TOKEN": stack.admin_token,
        "AIAPI_EDGE_PORT": str(edge_port),
        "AIAPI_ACCOUNTS_PORT": str(accounts_port),
        "AIAPI_ADMIN_PORT": str(admin_port),
        "AIAPI_LOG_LEVEL": "WARNING",
    }
    stack.sim_url = f"http://127.0.0.1:{sim_port}"
    stack.admin_url = f"http://127.0.0.1:{admin_port}"
    stack.edge_url = f"http://127.0.0.1:{edge_port}"
    stack.start(
        "simulator",
        [PY, "-m", "aiapi_simulator", "--port", str(sim_port)],
        {},
        stack.sim_url + "/healthz",
    )
    stack.start("billing", [PY, "-m", "aiapi_billing"], *internal_env(common))
    stack.start(
        "accounts",
        [PY, "-m", "aiapi_accounts"],
        *internal_env({**common, "AIAPI_COOKIE_SECURE": "false"}),
    )
    edge_env = {
        **common,
        "AIAPI_UPSTREAM_URL": stack.sim_url,
        "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
    }
    stack.start("edge", [PY, "-m", "aiapi_edge"], *internal_env(edge_env))
    return stack


def _admin(stack: Stack) -> NatsConnectOptions | None:
    if stack.nats_users is None:
        return None
    password = SecretStr(stack.nats_users.passwords[ADMIN_USER])
    return NatsConnectOptions(user=ADMIN_USER, password=password)


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


async def make_customers(http: aiohttp.ClientSession, stack: Stack, count: int) -> list[Customer]:
    auth = {"authorization": f"Bearer {stack.admin_token}"}
    base = stack.admin_url + "/admin/v1/accounts"

    async def one(i: int) -> Customer:
        body = {"email": f"bench{i}@example.com", "plan": PLAN}
        async with http.post(base, json=body, headers=auth) as answer:
            assert answer.status == 201, await answer.text()
            account_id = (await answer.json())["id"]
        credit = {"amount_usd": START_USD, "reason": "benchmark"}
        headers = {**auth, "idempotency-key": f"bench-{i}"}
        async with http.post(f"{base}/{account_id}/adjustments", json=credit, headers=headers) as a:
            assert a.status == 201, await a.text()
        async with http.post(
            f"{base}/{account_id}/keys", json={"name": "bench"}, headers=auth
        ) as a:
            assert a.status == 201, await a.text()
            return Customer(account_id, (await a.json())["key"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def balances(
    http: aiohttp.ClientSession, stack: Stack, customers: list[Customer]
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

CAT = default_catalogue()
_PRICE = next(m for m in CAT.models if m.id == MODEL).prices
_DISCOUNT = Fraction(CAT.plan(PLAN).discount_bps, 10_000)


def expected_cost(usage: dict[str, Any]) -> int:
    """Nano-USD: the contract's meters in exact fractions, rounded up once."""
    price = max(_PRICE, key=lambda p: p.effective_from)  # the bench runs after every start date
    per_in = Fraction(price.input_usd_per_mtok, 10**6)  # nano-USD per token
    per_out = Fraction(price.output_usd_per_mtok, 10**6)
    created = usage.get("cache_creation") or {}
    tokens = (
        usage.get("input_tokens", 0) * per_in
        + usage.get("cache_read_input_tokens", 0) * per_in / 10
        + created.get("ephemeral_5m_input_tokens", 0) * per_in * Fraction(5, 4)
        + created.get("ephemeral_1h_input_tokens", 0) * per_in * 2
        + usage.get("output_tokens", 0) * per_out
    )
    # Meters beyond tokens at the shipped catalogue's official prices (docs/billing.md).
    region = Fraction(11, 10) if usage.get("inference_geo") == "us" else Fraction(1)
    searches = (usage.get("server_tool_use") or {}).get("web_search_requests", 0)
    total = tokens * region + searches * Fraction(10**9, 100)  # 0.01 USD a search
    cost: int = ceil(total * (1 - _DISCOUNT))
    return cost


# -- load -----------------------------------------------------------------------------------

Shot = Callable[[aiohttp.ClientSession, int], Awaitable[tuple[float, int, int]]]


def shot_to(url: str, keys: list[str], body: bytes = BODY) -> Shot:
    """POST /v1/messages with the i-th key; returns (seconds, status, cost in nano-USD)."""

    async def shot(http: aiohttp.ClientSession, i: int) -> tuple[float, int, int]:
        headers = {**HEADERS, "x-api-key": keys[i % len(keys)]}
        started = time.perf_counter()
        async with http.post(url + "/v1/messages", data=body, headers=headers) as answer:
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
    stack: Stack,
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
    http: aiohttp.ClientSession, stack: Stack, customers: list[Customer]
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


def cpu_snapshot(stack: Stack) -> dict[str, dict[int, float]]:
    roots = {name: p.pid or 0 for name, p in stack.procs.items()}
    roots["postgres"] = stack.pg.pid or 0
    roots["nats"] = stack.nats.pid or 0
    return {name: cpu_seconds(pid) for name, pid in roots.items()}


async def bench(stack: Stack, requests: int, concurrency: int, accounts: int) -> bool:
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

        # The same load with the meters beyond tokens (METERED_BODY): their added cost.
        metered = shot_to(stack.edge_url, keys, METERED_BODY)
        m_started = time.perf_counter()
        m_run = await drive(metered, count=requests, concurrency=concurrency)
        m_expected = _expected_after({a: b for a, (b, _) in after.items()}, m_run, customers)
        await wait_settled(http, stack, customers, m_expected)
        m_rate = requests / (time.perf_counter() - m_started)
        m_after = await wait_settled(http, stack, customers, m_expected, released=True)
        m_moved = sum(b for b, _ in after.values()) - sum(b for b, _ in m_after.values())

        c1_direct = await drive(direct, count=1000, concurrency=1)
        c1_edge = await drive(edge, count=1000, concurrency=1)
        c1_metered = await drive(metered, count=1000, concurrency=1)
        # The same, once accounts' usage consumer (keys' last-used times) is gone: it is what
        # the edge's latency at concurrency 1 depends on (docs/billing.md, Benchmark).
        bus = await Bus.connect(stack.nats.url, name="bench", options=_admin(stack))
        try:
            await bus.js.delete_consumer("USAGE", ACCOUNTS_USAGE_CONSUMER)
        finally:
            await bus.close()
        await asyncio.sleep(1.0)
        c1_bare = await drive(edge, count=1000, concurrency=1)

    moved = sum(b for b, _ in before.values()) - sum(b for b, _ in after.values())
    ok = through.statuses == {200: requests} and moved == through.cost
    ok = ok and exact(after, expected)
    metered_ok = m_run.statuses == {200: requests} and m_moved == m_run.cost
    metered_ok = metered_ok and exact(m_after, m_expected)
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
    print(
        f"edge + meters, all settled:   {m_rate:7,.0f} requests/s"
        f" ({m_rate / settled_rate:.0%} of the plain run); books"
        f" {format_usd(m_moved)} USD: {'exact, no hold left' if metered_ok else 'MISMATCH'}"
    )
    print(latency_line(f"c={concurrency}", direct_run, through))
    print(latency_line(f"c={concurrency}, with meters", direct_run, m_run))
    print(latency_line("c=1", c1_direct, c1_edge))
    print(latency_line("c=1, with meters", c1_direct, c1_metered))
    print(latency_line("c=1, no acct. consumer", c1_direct, c1_bare))
    window = settled_at - started
    print(f"\nCPU seconds over the edge run until all settled ({window:.2f} s), by process:")
    for name, now in cpu_after.items():
        spent = sum(t - cpu_before[name].get(pid, 0.0) for pid, t in now.items())
        print(f"  {name:<10} {spent:6.2f} s  ({spent / window:4.0%} of one core)")
    return ok and metered_ok


def _expected_after(start: dict[str, int], run: Run, customers: list[Customer]) -> dict[str, int]:
    """Every request of the run costs the same (same body, same usage): spread it by key."""
    count = len(run.latencies)
    per_request, remainder = divmod(run.cost, count)
    assert remainder == 0, "requests of one body should cost the same"
    return balances_after(
        start, ((customers[i % len(customers)].account_id, per_request) for i in range(count))
    )


def run_on_stack(prefix: str, bench: Callable[[Stack], Coroutine[Any, Any, bool]]) -> None:
    """Start the stack in a fresh directory, run ``bench`` on it, stop it; exit 1 unless the
    books were exact."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = Path(tmp)
        data.chmod(0o755)
        stack = start_stack(data)
        try:
            ok: bool = uvloop.run(bench(stack))
        finally:
            stack.stop()
    sys.exit(0 if ok else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=40, help="Pro allows 500 requests/min")
    args = parser.parse_args()
    run_on_stack(
        "aiapi-money-path-",
        lambda stack: bench(stack, args.requests, args.concurrency, args.accounts),
    )


if __name__ == "__main__":
    main()
