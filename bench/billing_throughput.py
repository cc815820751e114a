"""Billing benchmark: admission round trip (p50/p99) and settlement throughput of one process.

Runs everything on loopback: an embedded PostgreSQL and nats-server in a temporary directory and
one ``python -m aiapi_billing`` process. Usage::

    .venv/bin/python bench/billing_throughput.py [--admissions 2000] [--events 10000]
        [--profile settlement.svg]

With ``--profile`` py-spy samples billing while it settles (its CPU figures are then worse).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_cli.ports import free_port
from aiapi_shared.admission import ADMIT_SUBJECT, AdmissionReply, AdmissionRequest
from aiapi_shared.billing_api import ADJUST_SUBJECT, AdjustCommand
from aiapi_shared.bus import Bus
from aiapi_shared.events import Usage, UsageRecorded, new_event_id

ACCOUNTS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of a process and its live descendants (PostgreSQL's backends)."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, fields in stats.items() if int(fields[1]) in tree} - tree
        tree |= more
        grew = bool(more)
    return sum((int(stats[p][11]) + int(stats[p][12])) / CLK_TCK for p in tree if p in stats)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("billing exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


async def _fund(bus: Bus) -> None:
    for i in range(ACCOUNTS):
        cmd = AdjustCommand(
            account_id=f"bench_{i}", amount=10**12, reason="bench", idempotency_key=f"bench-{i}"
        )
        await bus.request(ADJUST_SUBJECT, cmd.model_dump_json().encode(), timeout_s=10)


async def _admissions(bus: Bus, count: int) -> list[float]:
    latencies: list[float] = []
    for i in range(count):
        req = AdmissionRequest(
            request_id=f"req_{new_event_id()}",
            account_id=f"bench_{i % ACCOUNTS}",
            key_id="key",
            plan="pro",
            model="claude-sonnet-4-6",
            estimated_input_tokens=1000,
            max_tokens=1000,
            started_at=datetime.now(UTC),
        )
        payload = req.model_dump_json().encode()
        t0 = time.perf_counter()
        data = await bus.request(ADMIT_SUBJECT, payload, timeout_s=10)
        latencies.append(time.perf_counter() - t0)
        assert AdmissionReply.model_validate_json(data).decision == "admit"
    return latencies


async def _settlement(bus: Bus, count: int) -> float:
    start = datetime.now(UTC)
    events = [
        UsageRecorded(
            event_id=(rid := f"req_{new_event_id()}"),
            request_id=rid,
            account_id=f"bench_{i % ACCOUNTS}",
            key_id="key",
            model="claude-sonnet-4-6",
            requested_model="claude-sonnet-4-6",
            plan="basic",
            route="anthropic",
            started_at=start,
            finished_at=start + timedelta(seconds=1),
            outcome="ok",
            status_code=200,
            usage=Usage(input_tokens=1200, output_tokens=300, cache_read_input_tokens=2000),
        )
        for i in range(count)
    ]
    info = await bus.js.consumer_info("USAGE", "billing-settlement")
    base = info.delivered.stream_seq
    for chunk in range(0, count, 500):
        await asyncio.gather(*(bus.publish_event(e) for e in events[chunk : chunk + 500]))
    # Events were published as fast as possible; time how long billing takes to settle them all.
    t0 = time.perf_counter()
    while True:
        info = await bus.js.consumer_info("USAGE", "billing-settlement")
        if info.ack_floor.stream_seq >= base + count:
            break
        await asyncio.sleep(0.05)
    return count / (time.perf_counter() - t0)


async def measure(
    nats_url: str, admissions: int, events: int, pid: int, pg_pid: int, profile: Path | None
) -> None:
    bus = await Bus.connect(nats_url, name="bench")
    try:
        await _fund(bus)
        await _admissions(bus, 200)  # warm-up
        cpu = cpu_seconds(pid)
        lat = sorted(await _admissions(bus, admissions))
        cpu = (cpu_seconds(pid) - cpu) / admissions * 1000
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        print(
            f"admission round trip: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({admissions} requests);"
            f" billing CPU {cpu:.2f} ms per admission"
        )
        spy = None
        if profile is not None:
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                "--output", str(profile), "--rate", "200", "--nonblocking",
                "--format", "raw" if profile.suffix == ".txt" else "flamegraph",
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)
        cpu, pg_cpu = cpu_seconds(pid), tree_cpu_seconds(pg_pid)
        rate = await _settlement(bus, events)
        await asyncio.sleep(1.0)  # the outbox relay publishes what the last batches queued
        cpu = (cpu_seconds(pid) - cpu) / events * 1000
        pg_cpu = (tree_cpu_seconds(pg_pid) - pg_cpu) / events * 1000
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), timeout=60)
        print(
            f"settlement: {rate:,.0f} usage events/s by one billing process ({events} events);"
            f" billing CPU {cpu:.3f} ms per event (relay and snapshots included),"
            f" PostgreSQL {pg_cpu:.3f} ms per event"
        )
    finally:
        await bus.close()


def run(admissions: int, events: int, profile: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="aiapi-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        pg = EmbeddedPostgres(root / "pg", durable=True)
        nats = EmbeddedNats(root / "nats")
        pg.start()
        nats.start()
        port = free_port("127.0.0.1")
        env = {
            **os.environ,
            "AIAPI_DATABASE_URL": pg.url,
            "AIAPI_NATS_URL": nats.url,
            "AIAPI_INTERNAL_PORT": str(port),
            "AIAPI_LOG_LEVEL": "ERROR",
        }
        proc = subprocess.Popen([sys.executable, "-m", "aiapi_billing"], env=env)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/readyz", proc)
            pg_pid = pg.pid
            assert pg_pid is not None
            asyncio.run(measure(nats.url, admissions, events, proc.pid, pg_pid, profile))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            nats.stop()
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admissions", type=int, default=2000)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy flame graph of settlement (.svg; .txt: collapsed stacks)",
    )
    args = parser.parse_args()
    run(args.admissions, args.events, args.profile)


if __name__ == "__main__":
    main()
