"""Dashboard benchmark: page load latency (p50/p95) for a customer with a year of busy usage.

Runs on loopback: the system as ``aiapi_testkit.stack`` starts it (embedded PostgreSQL and
nats-server with per-service users, billing and accounts as processes; no edge, and no payments:
the top-up page answers at once with "no deposit address"). One customer signs up and makes 3
keys; the bench writes a year of their usage straight into billing's tables (what settlement
would have written: ``--per-day`` requests a day, default 2,000, so 730,000 usage records and as
many ledger transfers, over 3 keys and 3 models; the ``usage_daily`` rollup fills by its
trigger), then fetches each page ``--samples`` times, one after another, with the session cookie,
and prints p50/p95 per page and the CPU time each load cost the stack's processes (services,
PostgreSQL backends, NATS): on a shared machine the wall times move with everyone else's work, the
CPU time much less. Usage::

    .venv/bin/python bench/dashboard_pages.py [--per-day 2000] [--samples 200]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from aiapi_testkit.stack import start_stack

PASSWORD = "bench password 0123456789"
PAGES = (
    "/", "/keys", "/usage", "/usage?days=30", "/usage?days=366",
    "/usage?model=claude-opus-4-7&cursor={half_a_year_back}",  # a deep page of a filtered log
    "/billing", "/top-up", "/account", "/plan",
    # what the pages are made of: the request log's first page and the per-key totals
    "/api/v1/account/requests?limit=50", "/api/v1/account/usage/by-key?days=90",
    "/api/v1/account/ledger?limit=500",
)  # fmt: skip
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7")


def _customer(client: httpx.Client) -> tuple[str, list[str]]:
    creds = {"email": "busy@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/sign-up", json=creds).status_code == 202
    signed = client.post("/api/v1/auth/sign-in", json=creds)
    assert signed.status_code == 200, signed.text
    csrf = {"x-csrf-token": signed.json()["csrf_token"]}
    keys = []
    for name in ("laptop", "server", "ci"):
        made = client.post("/api/v1/account/keys", json={"name": name}, headers=csrf)
        assert made.status_code == 201, made.text
        keys.append(made.json()["id"])
    account_id: str = signed.json()["account"]["id"]
    return account_id, keys


def _fill(database_url: str, account_id: str, keys: list[str], per_day: int) -> int:
    """A year of usage and its ledger, written in bulk (what settlement would have written)."""
    total = per_day * 365
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET search_path = billing, public")
        conn.execute(
            "INSERT INTO accounts (account_id, known, credits, debits)"
            " VALUES (%s, true, %s, %s)"
            " ON CONFLICT (account_id) DO UPDATE SET credits = EXCLUDED.credits,"
            " debits = EXCLUDED.debits",
            (account_id, 10**15, total * 5000),
        )
        conn.execute(
            "INSERT INTO usage_records (request_id, account_id, key_id, model, plan, route,"
            " outcome, status_code, started_at, finished_at, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, thinking_tokens,"
            " cost, content_hash)"
            " SELECT 'req_bench_' || i, %(account)s, (%(keys)s::text[])[1 + i %% 3],"
            " (%(models)s::text[])[1 + (i / 7) %% 3], 'basic', 'anthropic', 'ok', 200,"
            " now() - (i * interval '1 second' * 86400 / %(per_day)s),"
            " now() - (i * interval '1 second' * 86400 / %(per_day)s) + interval '2 seconds',"
            " 1000 + i %% 500, 200 + i %% 300, i %% 2000, 0, 0, 0, 4000 + i %% 2000, 'h'"
            " FROM generate_series(1, %(total)s) AS i",
            {"account": account_id, "keys": keys, "models": list(MODELS),
             "per_day": per_day, "total": total},
        )  # fmt: skip
        conn.execute(
            "INSERT INTO transfers (transfer_key, kind, account_id, from_account, to_account,"
            " amount, balance_after, reference, created_at)"
            " SELECT 'usage:req_bench_' || i, 'usage', %(account)s, 'cust:' || %(account)s,"
            " 'sys:revenue', 4000 + i %% 2000, 1000000000000000 - i::bigint * 5000,"
            " 'req_bench_' || i,"
            " now() - (i * interval '1 second' * 86400 / %(per_day)s)"
            " FROM generate_series(%(total)s, 1, -1) AS i",
            {"account": account_id, "per_day": per_day, "total": total},
        )
        conn.execute("ANALYZE usage_records")
        conn.execute("ANALYZE transfers")
    return total


def _half_a_year_back() -> str:
    """A request-log cursor (as the page's "Older requests" link carries) 182 days back."""
    moment = datetime.now(UTC) - timedelta(days=182)
    raw = json.dumps({"t": moment.isoformat(), "id": "req_bench_"}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cpu_seconds(roots: set[int]) -> float:
    """CPU time (user + system) used so far by the stack's processes and their children (the
    PostgreSQL backends): what a page costs the server, whatever else the machine is doing."""
    used = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) in roots or int(fields[1]) in roots:
            used += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return used / os.sysconf("SC_CLK_TCK")


def _measure(client: httpx.Client, samples: int, roots: set[int]) -> None:
    for page in PAGES:
        path = page.format(half_a_year_back=_half_a_year_back())
        for _ in range(5):  # warm-up: connections, caches, the first template compilation
            client.get(path)
        times = []
        cpu_before = _cpu_seconds(roots)
        for _ in range(samples):
            t0 = time.perf_counter()
            answer = client.get(path)
            times.append(time.perf_counter() - t0)
            assert answer.status_code == 200, (path, answer.status_code)
        cpu_ms = (_cpu_seconds(roots) - cpu_before) / samples * 1000
        times.sort()
        p50 = statistics.median(times) * 1000
        p95 = times[int(len(times) * 0.95) - 1] * 1000
        print(
            f"{page:<40} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  server CPU {cpu_ms:5.1f} ms a load"
            f"  ({samples} loads)"
        )


def run(per_day: int, samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="aiapi-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        stack = start_stack(root, edges=0, payments=True, env={"AIAPI_LOG_LEVEL": "ERROR"})
        try:
            with httpx.Client(base_url=stack.accounts_url, timeout=30) as client:
                account_id, keys = _customer(client)
                t0 = time.perf_counter()
                rows = _fill(stack.pg.url, account_id, keys, per_day)
                print(
                    f"data: one customer, {rows:,} usage records and {rows:,} ledger transfers"
                    f" over 365 days ({per_day:,} requests a day), {len(keys)} keys,"
                    f" {len(MODELS)} models; written in {time.perf_counter() - t0:.0f} s"
                )
                load = os.getloadavg()[0]
                _measure(client, samples, set(stack.pids().values()))
                print(
                    f"machine: {os.cpu_count()} cores, load average {load:.1f} before the loads"
                    f" and {os.getloadavg()[0]:.1f} after (other work slows every figure)"
                )
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    run(args.per_day, args.samples)


if __name__ == "__main__":
    main()
