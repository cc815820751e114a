"""The soak: the whole system at a steady rate for a long time, sampling what could leak.

Runs the stack of ``aiapi_testkit.stack`` (PostgreSQL, NATS with per-service users, the
simulator as the upstream, billing, accounts, payments and an edge), sends a steady rate of
mixed requests (JSON, streams, the OpenAI route) through the edge from a set of funded accounts,
and every ``--every`` seconds samples: the RSS and open file descriptors of every process (the
servers included), the bytes of each JetStream stream and the PostgreSQL database size, plus the
requests answered so far. Writes ``<out>.csv`` and ``<out>.svg`` (a plot: one panel per measure,
drawn here without a plotting library) and prints the first and last sample of each series with
its growth per 1,000 requests. Usage::

    .venv/bin/python bench/soak.py --minutes 30 --rate 20 --out docs/soak
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psycopg
from aiapi_shared.bus import Bus
from aiapi_testkit.stack import LocalStack, start_stack
from customers import open_account

STREAMS = ("USAGE", "BILLING", "ACCOUNTS", "PAYMENTS")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 2**20


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def open_accounts(http: aiohttp.ClientSession, stack: LocalStack, count: int) -> list[str]:
    keys = []
    for i in range(count):
        plan = "pro" if i % 2 else "basic"
        _, key = await open_account(http, stack, label=f"soak{i}", plan=plan, credit_usd="1000.00")
        keys.append(key)
    return keys


async def one(http: aiohttp.ClientSession, edge: str, key: str, rng: random.Random) -> int:
    kind = rng.choice(("json", "json", "stream", "openai"))
    body: dict[str, object] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"soak [[tokens: {rng.randint(5, 40)}]]"}],
    }
    if kind == "openai":
        url, headers = f"{edge}/v1/chat/completions", {"authorization": f"Bearer {key}"}
    else:
        url, headers = f"{edge}/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}
        body["stream"] = kind == "stream"
    headers["content-type"] = "application/json"
    async with http.post(url, data=orjson.dumps(body), headers=headers) as answer:
        await answer.read()
        return answer.status


async def drive(
    stack: LocalStack, keys: list[str], rate: float, until: float, done: list[int]
) -> None:
    rng = random.Random(1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        tasks: set[asyncio.Task[int]] = set()

        def finished(task: asyncio.Task[int]) -> None:
            tasks.discard(task)
            done.append(0 if task.cancelled() or task.exception() else task.result())

        next_at = time.monotonic()
        while time.monotonic() < until:
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            task = asyncio.create_task(one(http, stack.edge_url, rng.choice(keys), rng))
            tasks.add(task)
            task.add_done_callback(finished)
        await asyncio.gather(*tasks, return_exceptions=True)


async def sample(stack: LocalStack, bus: Bus, started: float, done: list[int]) -> dict[str, float]:
    row: dict[str, float] = {"t_s": round(time.monotonic() - started, 1), "requests": len(done)}
    row["ok"] = sum(1 for s in done if s == 200)
    for name, pid in stack.pids().items():
        try:
            row[f"rss_mib.{name}"] = round(rss_mib(pid), 2)
            row[f"fds.{name}"] = fds(pid)
        except OSError:
            continue
    for stream in STREAMS:
        info = await bus.js.stream_info(stream)
        row[f"stream_kib.{stream}"] = round(info.state.bytes / 1024, 1)
    with psycopg.connect(stack.pg.url) as conn:
        size = conn.execute("SELECT pg_database_size('postgres')").fetchone()
    row["pg_mib"] = round((size[0] if size else 0) / 2**20, 2)
    return row


def svg_plot(rows: list[dict[str, float]], path: Path) -> None:
    """One small panel per measure family, one polyline per series, x = requests answered."""
    families: dict[str, list[str]] = {}
    for column in rows[0]:
        if column in ("t_s", "requests", "ok"):
            continue
        families.setdefault(column.split(".")[0], []).append(column)
    colours = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
    ]
    width, height, pad = 760, 220, 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height * len(families)}" font-family="sans-serif" font-size="11">'
    ]
    xmax = max(r["requests"] for r in rows) or 1
    for n, (family, columns) in enumerate(families.items()):
        top = n * height
        ymax = max(max(r.get(c, 0) for r in rows) for c in columns) * 1.1 or 1
        out.append(
            f'<text x="{pad}" y="{top + 15}" font-weight="bold">{family} (max {ymax / 1.1:.1f})</text>'
        )
        out.append(
            f'<rect x="{pad}" y="{top + 25}" width="{width - 2 * pad - 120}" height="{height - 60}" fill="none" stroke="#999"/>'
        )
        for i, column in enumerate(columns):
            colour = colours[i % len(colours)]
            points = " ".join(
                f"{pad + (r['requests'] / xmax) * (width - 2 * pad - 120):.1f},"
                f"{top + 25 + (height - 60) * (1 - r.get(column, 0) / ymax):.1f}"
                for r in rows
            )
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
            )
            out.append(
                f'<text x="{width - pad - 110}" y="{top + 40 + 13 * i}" fill="{colour}">{column.split(".", 1)[-1]}</text>'
            )
        out.append(
            f'<text x="{pad}" y="{top + height - 20}">0 … {xmax:.0f} requests answered; y from 0</text>'
        )
    out.append("</svg>")
    path.write_text("\n".join(out))


async def soak(stack: LocalStack, args: argparse.Namespace) -> list[dict[str, float]]:
    async with aiohttp.ClientSession() as http:
        keys = await open_accounts(http, stack, args.accounts)
    await asyncio.sleep(2)
    bus = await Bus.connect(stack.nats.url, name="soak", options=stack.admin_options())
    rows: list[dict[str, float]] = []
    done: list[int] = []
    started = time.monotonic()
    until = started + args.minutes * 60
    load = asyncio.create_task(drive(stack, keys, args.rate, until, done))
    try:
        while not load.done():
            rows.append(await sample(stack, bus, started, done))
            print(
                " ".join(
                    f"{k}={v}" for k, v in rows[-1].items() if "." not in k or k.startswith("rss")
                ),
                flush=True,
            )
            await asyncio.wait([load], timeout=args.every)
        await load
        rows.append(await sample(stack, bus, started, done))
    finally:
        await bus.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path("docs/soak"), help="<out>.csv, <out>.svg")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="aiapi-soak-"))
    data.chmod(0o755)
    stack = start_stack(data, payments=True)
    try:
        rows = asyncio.run(soak(stack, args))
    finally:
        stack.stop()
        shutil.rmtree(data, ignore_errors=True)
    columns = sorted({c for r in rows for c in r}, key=lambda c: (c.split(".")[0] != "t_s", c))
    with args.out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    svg_plot(rows, args.out.with_suffix(".svg"))
    first, last = rows[1] if len(rows) > 2 else rows[0], rows[-1]
    answered = max(1.0, last["requests"] - first["requests"])
    print(f"{last['requests']:.0f} requests ({last['ok']:.0f} ok) in {args.minutes:g} min")
    for column in (c for c in columns if "." in c or c == "pg_mib"):
        growth = (last.get(column, 0) - first.get(column, 0)) / answered * 1000
        print(
            f"  {column:<28} {first.get(column, 0):>10} -> {last.get(column, 0):>10}  ({growth:+.3f} per 1k requests)"
        )


if __name__ == "__main__":
    main()
