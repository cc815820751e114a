"""Edge benchmark: what the gateway adds over calling the upstream directly.

Everything runs on loopback, in subprocesses: an embedded nats-server, an admitting responder
standing in for billing (its own process), the simulator (and a second one that waits 50 ms
before its first byte), and ``python -m aiapi_edge`` in front of each, with authentication,
admission, metering and the spool all on (its default durability: a commit per event, an
fsync every 50 ms). Admission is the edge's default, leases granted by the responder as billing
grants them to an account with money (``--admission per-request``: one round trip per request, as
with leases turned off). Every figure is printed next to the direct run
measured in the same invocation, because the machine is shared and noisy. Usage::

    .venv/bin/python bench/edge_latency.py [--quick] [--admission lease|per-request]

Measures: latency added at p50/p99 (JSON, and streaming time to first byte) at concurrency 1
and 64; CPU time of the edge process per request (from /proc); requests/s at saturation; the
share of direct requests/s delivered behind a 50 ms upstream at concurrency 64; the edge's memory
over 1,000 concurrent streams; and what the OpenAI translation adds over the passthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_edge.mirrors import key_digest
from aiapi_shared.admission import (
    ADMIT_SUBJECT,
    LEASE_CLOSE_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
    AdmissionReply,
    AdmissionRequest,
    LeaseCloseReply,
    LeaseGrantReply,
    LeaseGrantRequest,
    LeaseTopUpReply,
    LeaseTopUpRequest,
)
from aiapi_shared.bus import Bus
from aiapi_shared.events.records_v1 import KEYS_BUCKET, KeyRecord
from aiapi_testkit.process import ServiceProcess, internal_env

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
HEADERS_BASE = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
JSON_BODY = orjson.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark [[reply: ok]]"}],
    }
)
# 26 events: message_start, block start, ping, 20 deltas, block stop, message_delta, stop.
STREAM_BODY = orjson.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Benchmark [[tokens: 20]]"}],
    }
)
CHAT_BODY = orjson.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Benchmark [[reply: ok]]"}],
    }
)
TRANSLATED_BODY = orjson.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Benchmark [[reply: ok]]"}]}
        ],
    }
)
LONG_STREAM_BODY = orjson.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": "x [[tokens: 4]] [[fail: stall after=2 seconds=4 pings=off]]",
            }
        ],
    }
)


# -- processes ------------------------------------------------------------------------------


def start(argv: list[str], env: dict[str, str], health: str, log: Path) -> ServiceProcess:
    return ServiceProcess(argv, env=env, health_url=health, log_path=log).start(timeout_s=30)


def start_simulator(latency_ms: int, logs: Path) -> tuple[str, ServiceProcess]:
    port = free_port()
    argv = [PY, "-m", "aiapi_simulator", "--port", str(port), "--latency-ms", str(latency_ms)]
    url = f"http://127.0.0.1:{port}"
    return url, start(argv, {}, url + "/healthz", logs / f"sim-{latency_ms}.log")


def start_edge(
    nats_url: str, upstream: str, data: Path, name: str, leases: bool
) -> tuple[str, ServiceProcess]:
    port = free_port()
    env = {
        "AIAPI_EDGE_LEASES": "true" if leases else "false",
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_UPSTREAM_URL": upstream,
        "AIAPI_UPSTREAM_API_KEYS": "sk-ant-bench-0000",
        "AIAPI_EDGE_PORT": str(port),
        "AIAPI_EDGE_SPOOL_DIR": str(data / f"spool-{name}"),
        "AIAPI_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    env, ready = internal_env(env)
    return url, start([PY, "-m", "aiapi_edge"], env, ready, data / f"{name}.log")


def start_responder(nats_url: str, key: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PY, __file__, "--responder", nats_url, key],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def _edge_pids(pid: int) -> list[int]:
    """The edge process and its workers (an edge of several workers is a supervisor and its
    children: every figure is for all of them together)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for one in _edge_pids(pid):
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return total


def rss_mib(pid: int) -> float:
    pages = sum(int(Path(f"/proc/{one}/statm").read_text().split()[1]) for one in _edge_pids(pid))
    return pages * PAGE / 2**20


# -- the responder (a process of its own, like billing) ---------------------------------------


async def responder(nats_url: str, key: str) -> None:
    bus = await Bus.connect(nats_url, name="bench-billing")
    await bus.ensure_streams()
    kv = await bus.ensure_kv(KEYS_BUCKET)
    record = KeyRecord(
        key_id="key_bench",
        account_id="acct_bench",
        plan="pro",
        key_status="active",
        account_status="active",
        requests_per_minute=10**6,
        tokens_per_minute=10**9,
        updated_at=datetime.now(UTC),
    )
    await kv.put(key_digest(key), record.model_dump_json().encode())

    async def admit(data: bytes) -> bytes:
        request = AdmissionRequest.model_validate_json(data)
        return (
            # A hold of 1 USD, as billing would hold for this request: the edge watches it.
            AdmissionReply(
                decision="admit", hold_id="hold_" + request.request_id, hold_amount=10**9
            )
            .model_dump_json()
            .encode()
        )

    async def grant(data: bytes) -> bytes:
        # What billing grants an account with money and headroom: all that was asked.
        request = LeaseGrantRequest.model_validate_json(data)
        reply = LeaseGrantReply(
            decision="granted",
            amount=request.amount,
            requests=request.requests,
            tokens=request.tokens,
            admit_for_s=10.0,
        )
        return reply.model_dump_json().encode()

    async def top_up(data: bytes) -> bytes:
        request = LeaseTopUpRequest.model_validate_json(data)
        return LeaseTopUpReply(granted=True, amount=request.amount).model_dump_json().encode()

    async def close(data: bytes) -> bytes:
        return LeaseCloseReply(closed=True).model_dump_json().encode()

    await bus.serve(ADMIT_SUBJECT, admit, queue="billing")
    await bus.serve(LEASE_GRANT_SUBJECT, grant, queue="billing")
    await bus.serve(LEASE_TOP_UP_SUBJECT, top_up, queue="billing")
    await bus.serve(LEASE_CLOSE_SUBJECT, close, queue="billing")
    print("ready", flush=True)
    await bus.closed.wait()


# -- load -------------------------------------------------------------------------------------

Shot = Callable[[aiohttp.ClientSession], Awaitable[float]]


def json_shot(url: str, headers: dict[str, str], body: bytes, path: str = "/v1/messages") -> Shot:
    async def shot(http: aiohttp.ClientSession) -> float:
        started = time.perf_counter()
        async with http.post(url + path, data=body, headers=headers) as answer:
            await answer.read()
            assert answer.status == 200, answer.status
        return time.perf_counter() - started

    return shot


def ttfb_shot(url: str, headers: dict[str, str], body: bytes) -> Shot:
    async def shot(http: aiohttp.ClientSession) -> float:
        started = time.perf_counter()
        async with http.post(url + "/v1/messages", data=body, headers=headers) as answer:
            await answer.content.readany()
            first = time.perf_counter() - started
            await answer.read()
            assert answer.status == 200
        return first

    return shot


async def run(shot: Shot, *, concurrency: int, count: int) -> list[float]:
    connector = aiohttp.TCPConnector(limit=0)
    results: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as http:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                results.append(await shot(http))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def throughput(shot: Shot, *, concurrency: int, seconds: float) -> float:
    connector = aiohttp.TCPConnector(limit=0)
    done = 0
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await shot(http)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- the benchmark ----------------------------------------------------------------------------


async def latency_pair(
    label: str,
    direct: Shot,
    through: Shot,
    *,
    concurrency: int,
    count: int,
    names: tuple[str, str] = ("direct", "edge"),
) -> None:
    await run(direct, concurrency=concurrency, count=count // 10)  # warm up both
    await run(through, concurrency=concurrency, count=count // 10)
    d, e = [], []
    for _ in range(2):  # interleave halves so drift hits both sides
        d += await run(direct, concurrency=concurrency, count=count // 2)
        e += await run(through, concurrency=concurrency, count=count // 2)
    print(
        f"{label:<28} c={concurrency:<3} {names[0]} p50 {pct(d, 0.5):7.3f} ms p99 {pct(d, 0.99):7.3f} | "
        f"{names[1]} p50 {pct(e, 0.5):7.3f} p99 {pct(e, 0.99):7.3f} | added p50 {pct(e, 0.5) - pct(d, 0.5):+.3f} "
        f"p99 {pct(e, 0.99) - pct(d, 0.99):+.3f} ms"
    )


async def cpu_per_request(label: str, pid: int, shot: Shot, count: int) -> None:
    before = cpu_seconds(pid)
    await run(shot, concurrency=8, count=count)
    spent = cpu_seconds(pid) - before
    print(f"{label:<34} edge CPU per request {spent / count * 1000:.3f} ms ({count} requests)")


async def memory_over_streams(url: str, headers: dict[str, str], pid: int, streams: int) -> None:
    idle = rss_mib(pid)
    peak = idle
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            async with http.post(url + "/v1/messages", data=LONG_STREAM_BODY, headers=headers) as a:
                await a.read()

        tasks = [asyncio.ensure_future(one()) for _ in range(streams)]
        while not all(t.done() for t in tasks):
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)
    after = rss_mib(pid)
    print(
        f"memory over {streams} concurrent streams: idle {idle:.1f} MiB, peak {peak:.1f} MiB "
        f"(+{(peak - idle) * 1024 / streams:.1f} KiB/stream), after {after:.1f} MiB"
    )


async def bench(quick: bool, leases: bool) -> None:
    scale = 0.25 if quick else 1.0
    key = "sk-cc-" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(36)
    )
    edge_headers = {**HEADERS_BASE, "x-api-key": key}
    sim_headers = {**HEADERS_BASE, "x-api-key": "sk-ant-bench-0000"}
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        data = Path(tmp)
        nats = EmbeddedNats(data / "nats")
        nats.start()
        procs: list[ServiceProcess] = []
        responder = start_responder(nats.url, key)
        try:
            sim, p = start_simulator(0, data)
            procs.append(p)
            slow_sim, p = start_simulator(50, data)
            procs.append(p)
            edge, edge_proc = start_edge(nats.url, sim, data, "edge", leases)
            procs.append(edge_proc)
            slow_edge, p = start_edge(nats.url, slow_sim, data, "edge-slow", leases)
            procs.append(p)
            n = int(2000 * scale)
            direct_json = json_shot(sim, sim_headers, JSON_BODY)
            edge_json = json_shot(edge, edge_headers, JSON_BODY)
            direct_ttfb = ttfb_shot(sim, sim_headers, STREAM_BODY)
            edge_ttfb = ttfb_shot(edge, edge_headers, STREAM_BODY)
            workers = os.environ.get("AIAPI_EDGE_WORKERS") or "one per CPU"
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; times in ms;"
                f" edge workers: {workers} (AIAPI_EDGE_WORKERS)"
            )
            print(f"admission: {'leases' if leases else 'one round trip per request'}")
            print(
                "not pinned: the load generator, the simulators, NATS, the responder and the "
                f"edges share the same {len(os.sched_getaffinity(0))} CPUs\n"
            )
            await latency_pair("JSON", direct_json, edge_json, concurrency=1, count=n)
            await latency_pair("JSON", direct_json, edge_json, concurrency=64, count=4 * n)
            await latency_pair(
                "stream, time to first byte", direct_ttfb, edge_ttfb, concurrency=1, count=n
            )
            await latency_pair(
                "stream, time to first byte", direct_ttfb, edge_ttfb, concurrency=64, count=4 * n
            )
            await latency_pair(
                "translation (same request)",
                json_shot(edge, edge_headers, TRANSLATED_BODY),
                json_shot(edge, edge_headers, CHAT_BODY, "/v1/chat/completions"),
                concurrency=1,
                count=n,
                names=("passthrough", "openai"),
            )
            print()
            edge_pid = edge_proc.pid
            assert edge_pid is not None
            await cpu_per_request("JSON", edge_pid, edge_json, n)
            await cpu_per_request(
                "26-event stream", edge_pid, json_shot(edge, edge_headers, STREAM_BODY), n
            )
            await cpu_per_request(
                "OpenAI JSON",
                edge_pid,
                json_shot(edge, edge_headers, CHAT_BODY, "/v1/chat/completions"),
                n,
            )
            print()
            seconds = 5 * scale
            d = await throughput(direct_json, concurrency=64, seconds=seconds)
            e = await throughput(edge_json, concurrency=64, seconds=seconds)
            print(
                f"saturation c=64: direct {d:,.0f} req/s, edge {e:,.0f} req/s ({e / d:.0%} of direct)"
            )
            slow_direct = json_shot(slow_sim, sim_headers, JSON_BODY)
            slow_through = json_shot(slow_edge, edge_headers, JSON_BODY)
            d = await throughput(slow_direct, concurrency=64, seconds=seconds)
            e = await throughput(slow_through, concurrency=64, seconds=seconds)
            print(
                f"50 ms upstream c=64: direct {d:,.0f} req/s, edge {e:,.0f} req/s ({e / d:.1%} of direct)"
            )
            await memory_over_streams(edge, edge_headers, edge_pid, 1000)
        finally:
            for proc in reversed(procs):
                proc.stop()
            responder.terminate()
            responder.wait(timeout=15)
            nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the samples")
    parser.add_argument(
        "--admission",
        choices=("lease", "per-request"),
        default="lease",
        help="the edge's admission: leases (its default) or a round trip per request",
    )
    parser.add_argument("--responder", nargs=2, metavar=("NATS_URL", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.responder:
        uvloop.run(responder(*args.responder))
        return
    started = time.perf_counter()
    uvloop.run(bench(args.quick, args.admission == "lease"))
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
