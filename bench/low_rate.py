"""Where the CPU of a request goes at a low request rate: a breakdown per process.

    .venv/bin/python bench/low_rate.py [--rates 10,100] [--seconds 30] [--accounts 40]
                                       [--strace] [--profile DIR]

Starts the whole product as ``bench/performance.py`` does (the same fake upstream, 50 ms before
each answer, an edge worker per CPU), warms every key up, measures the product at rest, then
sends JSON requests open-loop at each rate for ``--seconds`` and waits for their settlement.
For each window (rest, then each rate) it prints, per request:

* CPU (user + system, from /proc) of each process, its children included;
* NATS messages in and out of each client connection (nats-server's ``/connz``, by the name the
  service connects with) and the server's totals (``/varz``);
* PostgreSQL commits and rows written by table (``pg_stat_database``, ``pg_stat_user_tables``);
* with ``--strace``: the system calls of each process (``strace -c -f``; ``epoll_wait`` and
  friends are its wake-ups). strace slows what it traces: that window's CPU is not comparable.
* with ``--profile``: py-spy flame graphs of the Python services over each rate's window;
* with ``--statements``: PostgreSQL's statements by kind (``log_statement = all`` for the
  window, read back from its log), which also costs PostgreSQL CPU;
* with ``--kinds``: NATS messages by kind (a usage event published, its ack, its delivery to a
  consumer, that consumer's ack, a balance snapshot written or delivered to a watch, ...), seen
  by one more connection subscribed to every subject (``>``, as the admin user). That connection
  is left out of the per-connection figures and of the server's "out"; what it costs nats-server
  is not: that window's NATS CPU is not comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import uvloop
from aiapi_shared.bus import Bus, Msg
from aiapi_testkit.apt import ensure_package
from aiapi_testkit.stack import LocalStack, start_stack
from money_path import _descendants
from performance import (
    NOT_PRODUCT,
    REST_S,
    UPSTREAM_KEY,
    Bench,
    FakeUpstream,
    body,
    cpu_by_process,
    make_keys,
    timed,
    warm_up,
)

# -- what one window counts ----------------------------------------------------------------------


@dataclass
class Counts:
    cpu_s: dict[str, float] = field(default_factory=dict)  # by process
    nats_in: Counter[str] = field(default_factory=Counter)  # client -> server, by connection
    nats_out: Counter[str] = field(default_factory=Counter)  # server -> client, by connection
    server: Counter[str] = field(default_factory=Counter)  # /varz in_msgs, out_msgs
    pg: Counter[str] = field(default_factory=Counter)  # commits, rollbacks
    rows: Counter[str] = field(default_factory=Counter)  # rows written, by table

    def minus(self, before: Counts) -> Counts:
        def sub(a: Mapping[str, float], b: Mapping[str, float]) -> Counter[str]:
            return Counter({k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)})

        return Counts(
            cpu_s=dict(sub(self.cpu_s, before.cpu_s)),
            nats_in=sub(self.nats_in, before.nats_in),
            nats_out=sub(self.nats_out, before.nats_out),
            server=sub(self.server, before.server),
            pg=sub(self.pg, before.pg),
            rows=sub(self.rows, before.rows),
        )


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback)
        return json.loads(answer.read())  # type: ignore[no-any-return]


def count(stack: LocalStack) -> Counts:
    out = Counts(cpu_s=cpu_by_process(stack))
    monitor = f"http://127.0.0.1:{stack.nats.monitor_port}"
    varz = _get(f"{monitor}/varz")
    out.server.update({"in_msgs": int(varz["in_msgs"]), "out_msgs": int(varz["out_msgs"])})  # type: ignore[call-overload]
    connz = _get(f"{monitor}/connz?limit=1024")
    for conn in connz["connections"]:  # type: ignore[attr-defined]
        name = conn.get("name") or f"cid{conn['cid']}"
        if name == SNIFFER:  # the --kinds connection: not the product's
            continue
        out.nats_in[name] += int(conn["in_msgs"])
        out.nats_out[name] += int(conn["out_msgs"])
    with psycopg.connect(stack.pg.url, autocommit=True) as db:
        db.execute("SELECT pg_stat_clear_snapshot()")
        row = db.execute(
            "SELECT sum(xact_commit), sum(xact_rollback) FROM pg_stat_database"
        ).fetchone()
        assert row is not None
        out.pg.update({"commits": int(row[0]), "rollbacks": int(row[1])})
        for table, ins, upd, dele in db.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        ):
            out.rows[f"{table} +"] += ins
            out.rows[f"{table} ~"] += upd
            out.rows[f"{table} -"] += dele
    return out


# -- messages by kind (--kinds) -----------------------------------------------------------------

SNIFFER = "bench-sniffer"


def kind_of(msg: Msg) -> str:
    """What a message seen on ``>`` is, from its subject, reply subject and first bytes."""
    subject, reply = msg.subject, msg.reply or ""
    if subject.startswith("$JS.ACK."):
        stream, consumer = subject.split(".")[2:4]
        verb = bytes(msg.data[:4]).decode(errors="replace") or "+ACK"
        return f"ack {verb} {stream}/{consumer[:24]}"
    if reply.startswith("$JS.ACK."):
        stream, consumer = reply.split(".")[2:4]
        return f"delivery {stream}/{consumer[:24]}"
    if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
        return "pull request " + subject.split(".")[-1][:24]
    if subject.startswith("$JS.API."):
        return "JetStream API " + ".".join(subject.split(".")[2:4])
    if subject.startswith("$JS.FC."):
        return "flow control reply"
    if subject.startswith("$KV."):
        return "KV put " + subject.split(".")[1]
    if subject.startswith("_INBOX.") or ".INBOX" in subject or "_INBOX" in subject:
        status = (msg.headers or {}).get("Status", "")
        if status:
            return f"status {status} to a pull or watch"
        if bytes(msg.data[:10]) == b'{"stream":':
            return "publish ack"
        return "reply (request/reply)"
    if reply:
        prefix = ".".join(subject.split(".")[:3])
        return f"publish {prefix} (awaits a reply)"
    return "publish " + ".".join(subject.split(".")[:3])


@asynccontextmanager
async def kinds(stack: LocalStack, on: bool) -> AsyncIterator[Counter[str]]:
    """With ``on``, count every message NATS routes, by :func:`kind_of`, for the block."""
    found: Counter[str] = Counter()
    if not on:
        yield found
        return
    bus = await Bus.connect(stack.nats.url, name=SNIFFER, options=stack.admin_options())

    async def on_msg(msg: Msg) -> None:
        found[kind_of(msg)] += 1

    try:
        await bus.client.subscribe(">", cb=on_msg, pending_msgs_limit=1_000_000)
        await bus.client.flush()
        yield found
        await asyncio.sleep(0.5)  # what is in flight arrives
        await bus.client.flush()
    finally:
        await bus.close()


# -- tracing -------------------------------------------------------------------------------------


@contextmanager
def traced(stack: LocalStack, scratch: Path, label: str, on: bool) -> Iterator[dict[str, str]]:
    """With ``on``, ``strace -c -f`` on every product process for the block; fills the dict
    with each process's summary (the system calls it made, most frequent first)."""
    found: dict[str, str] = {}
    if not on:
        yield found
        return
    tracers = {}
    for name, pid in stack.pids().items():
        if name in NOT_PRODUCT:
            continue
        out = scratch / f"strace-{re.sub(r'[^a-z0-9]+', '-', label)}-{name}.txt"
        argv = ["strace", "-c", "-f", "-S", "calls", "-o", str(out)]
        for each in _descendants(pid):  # -f follows threads, and children born from now on
            argv += ["-p", str(each)]
        tracers[name] = (subprocess.Popen(argv, stderr=subprocess.DEVNULL), out)
    time.sleep(0.5)  # attached
    try:
        yield found
    finally:
        for proc, _ in tracers.values():
            proc.send_signal(signal.SIGINT)
        for name, (proc, out) in tracers.items():
            proc.wait(timeout=30)
            found[name] = out.read_text() if out.exists() else ""


def top_calls(summary: str, n: int = 6) -> list[tuple[str, int]]:
    calls = []
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls.append((parts[-1], int(parts[3])))
    return sorted(calls, key=lambda c: -c[1])[:n]


@contextmanager
def statements(stack: LocalStack, on: bool) -> Iterator[Counter[str]]:
    """With ``on``, PostgreSQL logs every statement for the block; fills the counter with them
    by kind (the first words of each, parameters left out) and by application."""
    found: Counter[str] = Counter()
    if not on:
        yield found
        return
    log = stack.pg.data_dir / "postgres.log"
    with psycopg.connect(stack.pg.url, autocommit=True) as db:
        db.execute("ALTER SYSTEM SET log_statement = 'all'")
        db.execute("ALTER SYSTEM SET log_line_prefix = '@%a@ '")
        db.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    start = log.stat().st_size
    try:
        yield found
    finally:
        with psycopg.connect(stack.pg.url, autocommit=True) as db:
            db.execute("ALTER SYSTEM RESET log_statement")
            db.execute("SELECT pg_reload_conf()")
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
        for m in re.finditer(r"^@([^@]*)@ LOG:  (?:statement|execute [^:]*): (.*)$", text, re.M):
            words = re.sub(r"\s+", " ", m.group(2)).strip()[:70]
            found[f"{m.group(1) or '?'}: {words}"] += 1


def _scaled(summary: str, factor: float) -> str:
    """An strace summary whose call counts are multiplied by ``factor`` (per second)."""
    lines = []
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[3].isdigit():
            parts[3] = str(round(int(parts[3]) * factor))
            line = " ".join(parts)
        lines.append(line)
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------


def report(label: str, d: Counts, requests: int, calls: dict[str, str], said: Counter[str], by_kind: Counter[str]) -> None:  # fmt: skip
    per = max(1, requests)
    unit = "per request" if requests else "per second"
    print(f"\n## {label} ({requests} requests; figures {unit})")
    cpu = sorted(d.cpu_s.items(), key=lambda kv: -kv[1])
    total = sum(d.cpu_s.values())
    print(f"CPU ms: total {total * 1000 / per:.2f}; " + ", ".join(f"{n} {s * 1000 / per:.2f}" for n, s in cpu))  # fmt: skip
    print(f"NATS server: in {d.server['in_msgs'] / per:.2f}, out {d.server['out_msgs'] / per:.2f} messages")  # fmt: skip
    for name in sorted(set(d.nats_in) | set(d.nats_out)):
        print(f"  {name}: in {d.nats_in[name] / per:.2f}, out {d.nats_out[name] / per:.2f}")
    print(f"PostgreSQL: commits {d.pg['commits'] / per:.2f}, rollbacks {d.pg['rollbacks'] / per:.2f}")  # fmt: skip
    rows = sorted(((k, v) for k, v in d.rows.items() if v), key=lambda kv: -kv[1])
    print("  rows: " + ", ".join(f"{k} {v / per:.2f}" for k, v in rows[:16]))
    if said:
        print(f"  statements: {sum(said.values()) / per:.2f}")
        for kind, n in said.most_common(30):
            print(f"    {n / per:6.2f}  {kind}")
    if by_kind:
        print(f"NATS messages by kind: {sum(by_kind.values()) / per:.2f}")
        for kind, n in by_kind.most_common(40):
            print(f"    {n / per:6.2f}  {kind}")
    for name, summary in sorted(calls.items()):
        print(f"  syscalls {name}: " + ", ".join(f"{c} {n / per:.1f}" for c, n in top_calls(summary)))  # fmt: skip


async def window(bench: Bench, label: str, rate: int, seconds: float, args: argparse.Namespace) -> None:  # fmt: skip
    stack = bench.stack
    before = await asyncio.to_thread(count, stack)
    async with kinds(stack, args.kinds) as by_kind:
        await window_body(bench, stack, rate, seconds, args, label, before, by_kind)


async def window_body(bench: Bench, stack: LocalStack, rate: int, seconds: float, args: argparse.Namespace, label: str, before: Counts, by_kind: Counter[str]) -> None:  # fmt: skip
    requests = 0
    with traced(stack, bench.scratch, label, args.strace) as calls, statements(stack, args.statements) as said:  # fmt: skip
        if rate:
            with bench.profiled(f"rate{rate}"):
                conns = max(1, min(64, rate // 10))
                job = timed(stack.edge_url, bench.keys, body(delay_ms=50), conns=conns, seconds=seconds, rate=rate)  # fmt: skip
                res = await job
                await bench.settled()
            requests = len(res.whole)
            bench.errors += res.failed
        else:
            await asyncio.sleep(seconds)
    await asyncio.sleep(1.2)  # PostgreSQL's statistics reach the view within a second
    d = (await asyncio.to_thread(count, stack)).minus(before)
    d.server["out_msgs"] -= sum(by_kind.values())  # what the --kinds connection received
    if not rate:  # per second
        d.cpu_s = {k: v / seconds for k, v in d.cpu_s.items()}
        for c in (d.nats_in, d.nats_out, d.server, d.pg, d.rows, said, by_kind):
            for k in c:
                c[k] = c[k] / seconds  # type: ignore[assignment]
        for name, summary in calls.items():
            calls[name] = _scaled(summary, 1 / seconds)
    report(label, d, requests, calls, said, by_kind)


async def run(args: argparse.Namespace, stack: LocalStack, product: FakeUpstream, direct: FakeUpstream, scratch: Path) -> None:  # fmt: skip
    keys = await make_keys(stack, args.accounts)
    bench = Bench(stack, product, direct, keys, args.seconds, scratch, profile_dir=args.profile)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    await warm_up(bench)
    await asyncio.sleep(args.rest)  # what the warm-up left (leases, lingers) ends
    await window(bench, "at rest", 0, args.idle_seconds, args)
    for rate in args.rates:
        await window(bench, f"{rate} requests/s", rate, args.seconds, args)
        await asyncio.sleep(args.gap)
    print(f"\nclient errors: {bench.errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="10,100", help="open-loop rates")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each rate")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--gap", type=float, default=12.0, help="rest between rates")
    parser.add_argument(
        "--rest",
        type=float,
        default=REST_S,
        help=f"rest after the warm-up (default {REST_S:g} s: leases handed back)",
    )
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--edge-workers", type=int, default=0, help="default: one per CPU")
    parser.add_argument("--strace", action="store_true", help="system calls (slows the run)")
    parser.add_argument("--statements", action="store_true", help="PostgreSQL's statements")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs (SVG) here")
    parser.add_argument("--kinds", action="store_true", help="NATS messages by kind")
    args = parser.parse_args()
    args.rates = [int(n) for n in args.rates.split(",") if n]
    ensure_package(Path("/usr/bin/strace"), "strace") if args.strace else None
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workers = args.edge_workers or len(os.sched_getaffinity(0))
    print(f"python {sys.version.split()[0]}, edge workers {workers}, accounts {args.accounts}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aiapi-low-rate-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)
        product, direct = FakeUpstream.start(), FakeUpstream.start()
        try:
            edge_env = {
                "AIAPI_UPSTREAM_URL": product.url,
                "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
                "AIAPI_EDGE_WORKERS": str(workers),
            }
            stack = start_stack(scratch, edge_env=edge_env)
            try:
                uvloop.run(run(args, stack, product, direct, scratch))
            finally:
                stack.stop()
        finally:
            product.stop()
            direct.stop()
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
