"""Bursts from cold: a burst of fresh accounts, and a burst right after the edge restarts, next to
the same burst on warm accounts, in one invocation (issue #20, item 5).

The whole product runs as in ``money_path.py`` (embedded PostgreSQL and nats-server, the
simulator, billing, accounts and the edge, every request admitted and settled). Two sets of Pro
accounts are made through the operator API. The *warm* set is warmed up (a request per key, then
a few seconds of load at the burst's concurrency, so that its admission leases have grown); then
three bursts of ``--seconds`` at ``--concurrency``, each clock started by the burst itself:

- ``warm``: the warm accounts (the baseline);
- ``cold``: the fresh accounts, never used: the first request of each account is in the burst;
- ``restart``: the warm accounts again, right after the edge was restarted (no lease in hand).

Prints each burst's requests/s and p50/p99 latency, its first second's requests/s, and the
ratios to the warm burst (requests/s) and what it adds to the warm burst's latency; ratios,
because the machine is shared and absolute figures move. Then waits until billing settled every
request of the fresh accounts and checks their balances moved by exactly the responses' costs,
with no hold left (exit 1 otherwise)::

    .venv/bin/python bench/cold_burst.py [--seconds 5] [--concurrency 64] [--accounts 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from aiapi_shared.money import format_usd
from aiapi_testkit.books import balances_after, exact
from money_path import (
    Customer,
    Shot,
    Stack,
    balances,
    make_customers,
    pct,
    run_on_stack,
    shot_to,
    wait_settled,
    warm_up,
)

WARM_UP_S = 3.0


@dataclass
class Burst:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_second: int = 0
    spent: dict[int, int] = field(default_factory=dict)  # key index -> nano-USD answered

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float) -> float:
        return pct(self.latencies, q)


async def burst(shot: Shot, keys: int, *, seconds: float, concurrency: int) -> Burst:
    """``concurrency`` clients for ``seconds``, the clock started with the first request."""
    result = Burst(seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        issued = 0
        started = time.perf_counter()
        until = started + seconds

        async def client() -> None:
            nonlocal issued
            while time.perf_counter() < until:
                i = issued
                issued += 1
                elapsed, status, cost = await shot(http, i)
                result.latencies.append(elapsed)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if time.perf_counter() - started <= 1.0:
                    result.first_second += 1
                result.spent[i % keys] = result.spent.get(i % keys, 0) + cost

        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def restart_edge(stack: Stack) -> None:
    edge = stack.procs["edge"]
    edge.stop(timeout_s=30)
    edge.start(timeout_s=60)


def line(label: str, run: Burst, warm: Burst) -> str:
    return (
        f"{label:<8} {run.rate:7,.0f} req/s ({run.rate / warm.rate:5.0%} of warm) | first second"
        f" {run.first_second:6,} ({run.first_second / max(1, warm.first_second):5.0%}) |"
        f" p50 {run.p(0.5):6.2f} ms ({run.p(0.5) - warm.p(0.5):+6.2f}) p99 {run.p(0.99):7.2f} ms"
        f" ({run.p(0.99) - warm.p(0.99):+7.2f}) | statuses {dict(sorted(run.statuses.items()))}"
    )


async def bench(stack: Stack, seconds: float, concurrency: int, accounts: int) -> bool:
    async with aiohttp.ClientSession() as http:
        everyone = await make_customers(http, stack, 2 * accounts)
        warm_set, cold_set = everyone[:accounts], everyone[accounts:]
        start = {a: b for a, (b, _) in (await balances(http, stack, everyone)).items()}
        warm_keys, cold_keys = [c.key for c in warm_set], [c.key for c in cold_set]
        warm_shot, cold_shot = (
            shot_to(stack.edge_url, warm_keys),
            shot_to(stack.edge_url, cold_keys),
        )
        await warm_up(warm_shot, warm_keys)
        # The edge must know the fresh keys too (from accounts' KV records), without a request.
        await asyncio.sleep(1.0)
        runs: list[tuple[list[Customer], Burst]] = []
        runs.append(
            (warm_set, await burst(warm_shot, accounts, seconds=WARM_UP_S, concurrency=concurrency))
        )
        warm = await burst(warm_shot, accounts, seconds=seconds, concurrency=concurrency)
        cold = await burst(cold_shot, accounts, seconds=seconds, concurrency=concurrency)
        restart_edge(stack)
        restarted = await burst(warm_shot, accounts, seconds=seconds, concurrency=concurrency)
        runs += [(warm_set, warm), (cold_set, cold), (warm_set, restarted)]

        expected = balances_after(
            start,
            (
                (customers[index].account_id, cost)
                for customers, run in runs
                for index, cost in run.spent.items()
            ),
        )
        # The fresh accounts' books are exact to check: nothing but the cold burst touched them.
        fresh = {c.account_id: expected[c.account_id] for c in cold_set}
        settled = await wait_settled(http, stack, cold_set, fresh, released=True)
    cold_ok = exact(settled, fresh)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; bursts of {seconds:.0f} s at"
        f" c={concurrency} over {accounts} Pro accounts each; the whole product\n"
    )
    print(line("warm", warm, warm))
    print(line("cold", cold, warm))
    print(line("restart", restarted, warm))
    moved = sum(start[c.account_id] - settled[c.account_id][0] for c in cold_set)
    print(
        f"\nbooks of the fresh accounts: balances moved by {format_usd(moved)} USD, the"
        f" responses' usage costs {format_usd(sum(cold.spent.values()))} USD:"
        f" {'exact, no hold left' if cold_ok else 'MISMATCH'}"
    )
    if not cold_ok:
        held = [
            (settled[c.account_id][0] - settled[c.account_id][1], settled[c.account_id][0])
            for c in cold_set
        ]
        print(
            f"  not yet settled or released after 180 s: {sum(1 for h, _ in held if h)} accounts"
            f" still hold {format_usd(sum(h for h, _ in held))} USD; balances off by"
            f" {format_usd(sum(b for _, b in held) - sum(expected[c.account_id] for c in cold_set))}"
            " USD (a lease or hold whose close was lost expires AIAPI_HOLD_TTL_S after its window)"
        )
    return cold_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--accounts", type=int, default=20, help="per burst; Pro allows 500 requests/min each"
    )
    args = parser.parse_args()
    run_on_stack(
        "aiapi-cold-burst-",
        lambda stack: bench(stack, args.seconds, args.concurrency, args.accounts),
    )


if __name__ == "__main__":
    main()
