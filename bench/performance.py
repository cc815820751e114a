"""The performance table of issue #20 for the whole product, against a direct baseline measured
in the same run. Usage::

    .venv/bin/python bench/performance.py [--quick] [--rounds 2] [--seconds 5]
                                          [--long 1000,5000] [--rates 10,100,1000]
                                          [--strace DIR]

The whole product runs as ``aiapi up`` runs it (``aiapi_testkit.stack``: PostgreSQL with fsync,
NATS with per-service users, billing, accounts, the edge with admission leases and its spool),
in front of ``bench/fake_upstream.js``: a Node.js server with canned answers, fast enough
(~20k+ requests/s) not to be what is measured. The direct baseline calls a second instance of the
same server. Load comes from ``wrk`` (installed with apt when missing) with a Lua script that
spreads requests over the accounts' keys; first bytes are timed by a small asyncio client that
reads raw sockets (wrk only times whole responses). Each figure is the median of ``--rounds``.

CPU is the whole product's (edge, billing, accounts, NATS, PostgreSQL: every process and child,
from /proc) over the run until billing has settled everything it caused, divided by the requests.
At the end the books are checked: every request the product sent upstream is billed exactly once,
at the catalogue's price, and every hold is released.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import cast

import aiohttp
import orjson
import uvloop
from aiapi_cli.ports import free_port
from aiapi_edge.lease_math import IDLE_CLOSE_S
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.money import format_usd
from aiapi_testkit.apt import ensure_package
from aiapi_testkit.books import expected_cost, read_books
from aiapi_testkit.stack import LocalStack, start_stack

sys.path.insert(0, str(Path(__file__).parent))
from customers import open_account
from money_path import _descendants, cpu_seconds

HERE = Path(__file__).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
MODEL = "claude-haiku-4-5"
# A plan made for the run (Pro's price and discount, limits no load here reaches): Pro's 500
# requests a minute per account would turn a long run into a measurement of the rate limiter
# (429s counted as errors), not of the product.
PLAN = "bench"
BASE_PLAN = "pro"
UPSTREAM_KEY = "sk-ant-bench-fake"
NOT_PRODUCT = ("simulator",)  # started by the stack, idle here: the fake upstream serves
LONG_LIFE_S = 4.0  # a long stream: 50 ms to its head, then 200 events 20 ms apart
LONG_EVENTS = 200  # its deltas (one upstream read each; the head and the tail are 2 more)
# The product is at rest once the edge handed back the leases of the last requests (it keeps one
# its account left unused for IDLE_CLOSE_S), so a figure at rest starts this long after them.
REST_S = IDLE_CLOSE_S + 2.0


def body(*, stream: bool = False, delay_ms: int = 0, long: bool = False) -> bytes:
    text = "Benchmark" + (f" [[delay:{delay_ms}]]" if delay_ms else "")
    text += " [[long]]" if long else ""
    message: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        message["stream"] = True
    return orjson.dumps(message)


# -- the fake upstream and wrk ----------------------------------------------------------------


def node_binary() -> str:
    found = shutil.which("node") or str(Path(sys.executable).with_name("node"))
    if not Path(found).exists():
        raise SystemExit("bench/performance.py needs Node.js (node) for its fake upstream")
    return found


@dataclass
class FakeUpstream:
    url: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls) -> FakeUpstream:
        port = free_port()
        proc = subprocess.Popen(
            [node_binary(), str(HERE / "fake_upstream.js"), str(port)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        return cls(f"http://127.0.0.1:{port}", proc)

    def count(self) -> int:
        with urllib.request.urlopen(self.url + "/count", timeout=10) as answer:  # noqa: S310 (http)
            return int(orjson.loads(answer.read())["started"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


LUA = """
local keys = {%(keys)s}
local n = 0
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
request = function()
  n = n + 1
  wrk.headers["x-api-key"] = keys[(n %% #keys) + 1]
  return wrk.format()
end
"""


@dataclass
class WrkResult:
    rate: float
    requests: int
    p50_ms: float
    errors: int


def wrk(url: str, keys: list[str], payload: bytes, *, conns: int, seconds: float, scratch: Path) -> WrkResult:  # fmt: skip
    script = scratch / "bench.lua"
    listed = ",".join(f'"{k}"' for k in keys)
    script.write_text(LUA % {"keys": listed, "body": payload.decode()})
    threads = min(2, conns)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency"]
    argv += ["--timeout", "60s"]  # a slow answer is latency, not a socket error
    out = subprocess.run(
        [*argv, "-s", str(script), url + "/v1/messages"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    assert p50 is not None, out
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(g) for g in failed.groups()) if failed else 0
    served = total - (int(bad.group(1)) if bad else 0)  # a refusal (429) is no throughput
    return WrkResult(rate * served / max(1, total), served, float(p50.group(1)) * unit, errors)


# -- first bytes: a raw-socket client (wrk times whole responses only) ---------------------------


class _Exchange(asyncio.Protocol):
    """One keep-alive connection; each request's time to first byte and to its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.first: float | None = None
        self.buffer = bytearray()
        self.status = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.buffer += data
        if self._complete() and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _complete(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).lower()
        self.status = int(head[9:12])
        if b"transfer-encoding: chunked" in head:
            return self.buffer.endswith(b"\r\n0\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head)
        return length is not None and len(self.buffer) - end - 4 >= int(length.group(1))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def call(self, request: bytes) -> tuple[float, float, int]:
        assert self.transport is not None
        self.first, self.buffer = None, bytearray()
        self.waiter = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self.transport.write(request)
        await self.waiter
        assert self.first is not None
        return self.first - started, time.perf_counter() - started, self.status


def http_request(url: str, key: str, payload: bytes) -> bytes:
    host = url.split("//", 1)[1]
    return (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\nx-api-key: {key}\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode() + payload


@dataclass
class Timings:
    first: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0

    def p(self, q: float, which: str = "first") -> float:
        values = sorted(getattr(self, which))
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")

    @property
    def rate(self) -> float:
        return len(self.whole) / self.seconds


async def timed(url: str, keys: list[str], payload: bytes, *, conns: int, seconds: float, rate: float = 0.0) -> Timings:  # fmt: skip
    """``conns`` connections, each sending requests back to back for ``seconds`` (or, with
    ``rate``, requests started at that total rate: an open loop)."""
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split(":")
    requests = [http_request(url, k, payload) for k in keys]
    out = Timings()
    deadline = time.perf_counter() + seconds
    gap = conns / rate if rate else 0.0

    async def one(n: int) -> None:
        _, conn = await loop.create_connection(_Exchange, host, int(port))
        i = n
        next_at = time.perf_counter() + (n * gap / conns if gap else 0.0)
        while time.perf_counter() < deadline:
            if gap:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += gap
            try:
                first, whole, status = await conn.call(requests[i % len(requests)])
            except ConnectionError:
                out.failed += 1
                _, conn = await loop.create_connection(_Exchange, host, int(port))
                continue
            i += conns
            if status != 200:
                out.failed += 1
                continue
            out.first.append(first)
            out.whole.append(whole)
        assert conn.transport is not None
        conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(conns)))
    out.seconds = time.perf_counter() - started
    return out


@dataclass
class LongTimings(Timings):
    """:class:`Timings` of long streams, with the opening burst's first bytes (each connection's
    first request, all asked at once) or the steady window's (see ``bench/long_client.js``)."""

    burst_first: list[float] = field(default_factory=list)
    steady_first: list[float] = field(default_factory=list)
    steady_whole: int = 0
    steady_seconds: float = 0.0

    @property
    def steady_rate(self) -> float:
        return self.steady_whole / self.steady_seconds if self.steady_seconds else float("nan")


async def node_timed(url: str, keys: list[str], payload: bytes, *, conns: int, seconds: float, scratch: Path, ramp: float = 0.0, steady_from: float = 0.0) -> LongTimings:  # fmt: skip
    """As :func:`timed`, from ``bench/long_client.js`` processes (one per CPU, the connections
    shared out): thousands of long streams are more than one Python client can read. With
    ``ramp`` the connections start spread over that many seconds and the steady window is from
    ``steady_from`` to ``seconds``."""
    (scratch / "long-body.json").write_bytes(payload)
    (scratch / "long-keys.txt").write_text("\n".join(keys) + "\n")
    procs = max(1, min(conns, len(os.sched_getaffinity(0))))
    shares = [conns // procs + (1 if n < conns % procs else 0) for n in range(procs)]
    script = HERE / "long_client.js"
    files = [str(scratch / "long-body.json"), str(scratch / "long-keys.txt")]
    steady = [f"{ramp:g}", f"{steady_from:g}"] if ramp else []
    clients = [
        await asyncio.create_subprocess_exec(
            node_binary(),
            str(script),
            url,
            str(share),
            str(seconds),
            *files,
            *steady,
            stdout=asyncio.subprocess.PIPE,
        )
        for share in shares
    ]
    out = LongTimings()
    for client in clients:
        stdout, _ = await client.communicate()
        found = orjson.loads(stdout)
        out.first += [ms / 1000 for ms in found["first_ms"]]
        out.whole += [0.0] * int(found["whole"])  # only counted
        out.failed += int(found["failed"])
        out.seconds = max(out.seconds, float(found["seconds"]))
        out.burst_first += [ms / 1000 for ms in found["burst_first_ms"]]
        out.steady_first += [ms / 1000 for ms in found["steady_first_ms"]]
        out.steady_whole += int(found["steady_whole"])
        out.steady_seconds = max(out.steady_seconds, float(found["steady_seconds"]))
    return out


# -- CPU and memory from /proc -----------------------------------------------------------------


def cpu_by_process(stack: LocalStack) -> dict[str, float]:
    """CPU seconds (user + system) so far of each product process with its children."""
    return {
        name: sum(cpu_seconds(root).values())
        for name, root in stack.pids().items()
        if name not in NOT_PRODUCT
    }


def edge_rss_bytes(stack: LocalStack) -> int:
    total = 0
    for name, root in stack.pids().items():
        for pid in _descendants(root) if name.startswith("edge") else ():
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


@contextmanager
def cpu_meter(stack: LocalStack) -> Iterator[dict[str, float]]:
    """Yields a dict filled on exit with each process's CPU seconds inside the block."""
    spent: dict[str, float] = {}
    before = cpu_by_process(stack)
    yield spent
    after = cpu_by_process(stack)
    spent.update({name: after[name] - before.get(name, 0.0) for name in after})


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Bench:
    stack: LocalStack
    product: FakeUpstream
    direct: FakeUpstream
    keys: list[str]
    seconds: float
    scratch: Path
    figures: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    profile_dir: Path | None = None  # --profile: py-spy flame graphs of the loads named below
    strace_dir: Path | None = None  # --strace: system calls of the edge in the c=64 loads

    @contextmanager
    def profiled(self, label: str) -> Iterator[None]:
        """With --profile, py-spy samples each Python service while the block runs and writes
        ``<label>-<service>.svg`` (py-spy takes CPU too: figures of a profiled run are worse)."""
        if self.profile_dir is None:
            yield
            return
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            raise SystemExit("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
        spies: list[subprocess.Popen[bytes]] = []
        for name, pid in self.stack.pids().items():
            if name in ("postgres", "nats", *NOT_PRODUCT):
                continue
            out = self.profile_dir / f"{label}-{name}.svg"
            argv = [str(spy), "record", "--nonblocking", "--subprocesses"]  # edge workers
            spies.append(
                subprocess.Popen(
                    [*argv, "-r", "200", "-p", str(pid), "-o", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)  # attached
        try:
            yield
        finally:
            for sampler in spies:
                sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            for sampler in spies:
                sampler.wait(timeout=60)

    @contextmanager
    def traced(self, label: str, calls: dict[str, float]) -> Iterator[None]:
        """With --strace, ``strace -c -f`` on the edge's processes (the supervisor and every
        worker) while the block runs; ``calls`` gets each system call's count and ``total``
        (strace slows what it traces: CPU figures of such a run are worse)."""
        if self.strace_dir is None:
            yield
            return
        out = self.strace_dir / f"{label}-edge.txt"
        edge = [pid for name, pid in self.stack.pids().items() if name.startswith("edge")]
        argv = ["strace", "-c", "-f", "-o", str(out)]
        for pid in (p for root in edge for p in _descendants(root)):
            argv += ["-p", str(pid)]
        tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached to every thread
        try:
            yield
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=60)
            for line in out.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 5 and fields[3].isdigit():  # % time, s, us/call, calls, ...
                    calls[fields[-1]] = float(fields[3])

    def note(self, name: str, value: float) -> None:
        self.figures.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        values = self.figures.get(name)
        return statistics.median(values) if values else float("nan")

    async def settled(self, timeout_s: float = 300.0) -> int:
        """Waits until billing recorded every request the product sent upstream; returns that
        count (or what was recorded at the deadline)."""
        deadline = time.monotonic() + timeout_s
        sent = await asyncio.to_thread(self.product.count)
        while True:
            billed = await asyncio.to_thread(_usage_count, self.stack.pg.url)
            if billed >= sent or time.monotonic() > deadline:
                return billed
            await asyncio.sleep(0.05)

    def load(self, url: str, payload: bytes, conns: int) -> WrkResult:
        keys = self.keys if url == self.stack.edge_url else [UPSTREAM_KEY]
        result = wrk(url, keys, payload, conns=conns, seconds=self.seconds, scratch=self.scratch)
        self.errors += result.errors
        return result

    async def first_bytes(self, url: str, payload: bytes, conns: int, **kw: float) -> Timings:
        keys = self.keys if url == self.stack.edge_url else [UPSTREAM_KEY]
        kw.setdefault("seconds", self.seconds)
        result = await timed(url, keys, payload, conns=conns, **kw)
        self.errors += result.failed
        return result

    async def product_cpu(self, run: Callable[[], object]) -> tuple[object, float, dict[str, float]]:  # fmt: skip
        """Runs ``run`` (a load on the product) and waits for its settlement: (its result, the
        whole product's CPU seconds over both, per process)."""
        with cpu_meter(self.stack) as spent:
            result = run()
            if asyncio.iscoroutine(result):
                result = await result
            await self.settled()
        return result, sum(spent.values()), spent

    async def round(self) -> None:
        edge, direct = self.stack.edge_url, self.direct.url
        json_fast, stream_fast = body(), body(stream=True)
        json_slow, stream_slow = body(delay_ms=50), body(stream=True, delay_ms=50)

        d = self.load(direct, json_fast, 1)
        with self.profiled("json-c1"):
            p = self.load(edge, json_fast, 1)
        self.note("json_c1_direct", d.p50_ms)
        self.note("json_c1_added", p.p50_ms - d.p50_ms)
        for conns in (1, 16):
            d_t = await self.first_bytes(direct, stream_fast, conns)
            p_t = await self.first_bytes(edge, stream_fast, conns)
            self.note(f"ttfb_c{conns}_direct", d_t.p(0.5))
            self.note(f"ttfb_c{conns}_added", p_t.p(0.5) - d_t.p(0.5))
        await self.settled()

        for kind, payload in (("json", json_fast), ("stream", stream_fast)):
            d = self.load(direct, payload, 64)
            calls: dict[str, float] = {}
            with self.profiled(f"{kind}-c64"), self.traced(f"{kind}-c64", calls):
                res, cpu, split = await self.product_cpu(partial(self.load, edge, payload, 64))
            assert isinstance(res, WrkResult)
            for name, count in calls.items():
                self.note(f"{kind}_c64_syscalls:{name}", count / max(1, res.requests))
            for name, spent in split.items():
                self.note(f"{kind}_c64_cpu_ms:{name}", spent * 1000 / max(1, res.requests))
            self.note(f"{kind}_c64_direct", d.rate)
            self.note(f"{kind}_c64_product", res.rate)
            self.note(f"{kind}_c64_cpu_ms", cpu * 1000 / max(1, res.requests))

        for kind, payload in (("json", json_slow), ("stream", stream_slow)):
            d = self.load(direct, payload, 64)
            p = self.load(edge, payload, 64)
            self.note(f"slow_{kind}_share", p.rate / d.rate * 100)
        await self.settled()

        self.note("vacuum_ms", await self.vacuumed() * 1000)
        d = self.load(direct, json_slow, 1)
        with self.profiled("slow-json-c1"):
            res, cpu, split = await self.product_cpu(lambda: self.load(edge, json_slow, 1))
        assert isinstance(res, WrkResult)
        for name, spent in split.items():
            self.note(f"slow_c1_cpu_ms:{name}", spent * 1000 / max(1, res.requests))
        self.note("slow_c1_added_p50", res.p50_ms - d.p50_ms)
        self.note("slow_c1_cpu_ms", cpu * 1000 / max(1, res.requests))
        d_t = await self.first_bytes(direct, stream_slow, 1)
        p_t = await self.first_bytes(edge, stream_slow, 1)
        self.note("slow_c1_added_ttfb", p_t.p(0.5) - d_t.p(0.5))
        await self.settled()
        self.profile_dir = None  # the first round only

    async def vacuumed(self) -> float:
        """``VACUUM (ANALYZE)`` of the product's database between two loads, outside both
        windows; PostgreSQL's CPU seconds for it. The fast loads leave tens of thousands of
        dead and new rows, which the autovacuum works off within a minute, in whatever window
        comes next: in the 50 ms c=1 window (about a hundred requests) it made PostgreSQL's
        part swing from 0.4 to 3 ms per request between runs of the same code. Paid here and
        printed on a line of its own, a low-rate window measures its own requests."""
        return await asyncio.to_thread(_vacuum, self.stack)

    async def idle(
        self, seconds: float, settle_s: float, profile: Path | None = None
    ) -> dict[str, float]:
        await asyncio.sleep(settle_s)  # what the last run left (leases, lingers) ends
        with cpu_meter(self.stack) as spent:
            await asyncio.sleep(seconds)
        if profile is not None:
            self.profile_dir = profile
            with self.profiled("idle"):
                await asyncio.sleep(seconds)
        return {name: s / seconds * 100 for name, s in spent.items()}

    async def rates(self, rates: list[int]) -> list[tuple[int, float, float]]:
        """(target rate, achieved rate, CPU ms per request) behind the 50 ms upstream."""
        found = []
        for rate in rates:
            self.note("vacuum_ms", await self.vacuumed() * 1000)
            conns = max(1, min(256, rate // 10))
            job = self.first_bytes(self.stack.edge_url, body(delay_ms=50), conns, rate=rate)
            res, cpu, _ = await self.product_cpu(lambda j=job: j)  # type: ignore[misc]
            assert isinstance(res, Timings)
            found.append((rate, res.rate, cpu * 1000 / max(1, len(res.whole))))
        return found

    async def long_streams(self, conns: int, window: float) -> dict[str, float]:
        """The opening burst (``conns`` streams asked at once) and, apart, the steady state: the
        same ``conns`` streams started over one stream's life, each replaced as it ends, measured
        over ``window`` seconds once every connection has started and the ramp has settled."""
        payload = body(stream=True, delay_ms=50, long=True)
        seconds = max(self.seconds, 6.0)  # a stream lasts 4 s
        ramp, steady_from = LONG_LIFE_S, LONG_LIFE_S + 2.0
        steady_s = steady_from + window
        d = await node_timed(self.direct.url, [UPSTREAM_KEY], payload, conns=conns, seconds=seconds, scratch=self.scratch)  # fmt: skip
        d_steady = await node_timed(self.direct.url, [UPSTREAM_KEY], payload, conns=conns, seconds=steady_s, scratch=self.scratch, ramp=ramp, steady_from=steady_from)  # fmt: skip
        rss_before = edge_rss_bytes(self.stack)
        peak = 0
        # The edge's resident memory every 0.25 s of the steady run's window, when every
        # connection carries a stream: its median, less the memory before the long streams.
        steady_rss: list[int] = []
        window_at: tuple[float, float] | None = None

        async def watch() -> None:
            nonlocal peak
            loop = asyncio.get_running_loop()
            while True:
                rss = edge_rss_bytes(self.stack)
                peak = max(peak, rss)
                if window_at is not None and window_at[0] <= loop.time() <= window_at[1]:
                    steady_rss.append(rss)
                await asyncio.sleep(0.25)

        watcher = asyncio.create_task(watch())
        with cpu_meter(self.stack) as spent:
            holds = await asyncio.to_thread(_hold_count, self.stack.pg.url)
            with self.profiled(f"long-{conns}"):
                p = await node_timed(self.stack.edge_url, self.keys, payload, conns=conns, seconds=seconds, scratch=self.scratch)  # fmt: skip
            burst_holds = await asyncio.to_thread(_hold_count, self.stack.pg.url) - holds
            now = asyncio.get_running_loop().time()
            window_at = (now + steady_from, now + steady_s)
            with self.profiled(f"long-{conns}-steady"):
                p_steady = await node_timed(self.stack.edge_url, self.keys, payload, conns=conns, seconds=steady_s, scratch=self.scratch, ramp=ramp, steady_from=steady_from)  # fmt: skip
            steady_holds = (
                await asyncio.to_thread(_hold_count, self.stack.pg.url) - holds - burst_holds
            )
            watcher.cancel()
            await self.settled()
        self.errors += p.failed + p_steady.failed
        streams = max(1, len(p.whole) + len(p_steady.whole))
        return {
            "share": p.rate / d.rate * 100 if d.rate else float("nan"),
            "p99_added": p.p(0.99, "burst_first") - d.p(0.99, "burst_first"),
            "p50_added": p.p(0.5, "burst_first") - d.p(0.5, "burst_first"),
            "steady_share": p_steady.steady_rate / d_steady.steady_rate * 100,
            "steady_rate": p_steady.steady_rate,
            "steady_direct_rate": d_steady.steady_rate,
            "steady_p99_added": p_steady.p(0.99, "steady_first") - d_steady.p(0.99, "steady_first"),
            "steady_p50_added": p_steady.p(0.5, "steady_first") - d_steady.p(0.5, "steady_first"),
            "steady_direct_p99": d_steady.p(0.99, "steady_first"),
            "window": window,
            "burst_holds": burst_holds,
            "burst_streams": len(p.whole),
            "steady_holds": steady_holds,
            "steady_streams": len(p_steady.whole),
            "kib_per_stream": (peak - rss_before) / conns / 1024,
            "steady_kib_per_stream": (
                (statistics.median(steady_rss) - rss_before) / conns / 1024
                if steady_rss
                else float("nan")
            ),
            "failed": p.failed + p_steady.failed,
            "direct_failed": d.failed + d_steady.failed,
            "streams": len(p.whole) + len(p_steady.whole),
            "cpu_ms": sum(spent.values()) * 1000 / streams,
            "edge_cpu_ms": sum(v for n, v in spent.items() if n.startswith("edge"))
            * 1000
            / streams,
        }


def _hold_count(database_url: str) -> int:
    """Holds billing made: one per request admitted by a round trip of its own (not a lease)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM billing.holds").fetchone()
    return int(row[0]) if row else 0


def _vacuum(stack: LocalStack) -> float:
    import psycopg

    # The backend's CPU is read while its connection is open: a process gone is not counted.
    with psycopg.connect(stack.pg.url, connect_timeout=5, autocommit=True) as conn:
        before = cpu_by_process(stack).get("postgres", 0.0)
        conn.execute("VACUUM (ANALYZE)")
        return cpu_by_process(stack).get("postgres", 0.0) - before


def _usage_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM billing.usage_records").fetchone()
    return int(row[0]) if row else 0


async def make_plan(http: aiohttp.ClientSession, stack: LocalStack) -> None:
    """The run's plan, through the operator API as an operator would make it."""
    pro = default_catalogue().plan(BASE_PLAN)
    body = {
        "display_name": "Benchmark",
        "price_usd": format_usd(pro.price_usd),
        "requests_per_minute": 10_000_000,
        "tokens_per_minute": 10_000_000_000,
        "discount_bps": pro.discount_bps,
    }
    auth = {"authorization": f"Bearer {stack.admin_token}"}
    url = f"{stack.admin_url}/admin/v1/plans/{PLAN}"
    async with http.put(url, json=body, headers=auth) as answer:
        assert answer.status == 200, await answer.text()


async def make_keys(stack: LocalStack, accounts: int) -> list[str]:
    async with aiohttp.ClientSession() as http:
        await make_plan(http, stack)
        made = await asyncio.gather(
            *(
                open_account(http, stack, label=f"perf{i}", plan=PLAN, credit_usd="1000.00")
                for i in range(accounts)
            )
        )
    return [key for _, key in made]


async def warm_up(bench: Bench) -> None:
    """Every key through the edge once (it learns keys from accounts' KV records)."""
    for _ in range(100):
        res = await timed(bench.stack.edge_url, bench.keys, body(), conns=8, seconds=0.5)
        if not res.failed and len(res.whole) >= len(bench.keys):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the edge never accepted every key")


def check_books(stack: LocalStack, sent: int) -> tuple[bool, str]:
    books = read_books(stack.pg.url)
    ids = {row.request_id for row in books.usage}
    # The run's plan has Pro's discount, so each record is priced as Pro would price it.
    wrong = [
        r
        for r in books.usage
        if r.plan != PLAN or r.cost != expected_cost(r.model, BASE_PLAN, r.meters, r.started_at)
    ]
    ok = len(books.usage) == sent == len(ids) and not wrong and books.open_holds == 0
    return ok, (
        f"{sent} requests sent upstream by the product, {len(books.usage)} billed"
        f" ({len(ids)} distinct), {len(wrong)} at a wrong price, {books.open_holds} holds open"
    )


# -- the report ----------------------------------------------------------------------------------


def edge_workers(args: argparse.Namespace) -> int:
    """The edge's worker processes: ``--edge-workers``, else one per CPU (``aiapi up``'s rule)."""
    return int(args.edge_workers or len(os.sched_getaffinity(0)))


def print_table(b: Bench) -> None:
    m = b.median
    rows = [
        ("added p50, JSON, c=1", f"{m('json_c1_direct'):.2f} ms", f"{m('json_c1_added'):+.2f} ms", "≤ +0.3 ms"),
        ("added first byte, stream, c=1", f"{m('ttfb_c1_direct'):.2f} ms", f"{m('ttfb_c1_added'):+.2f} ms", "≤ +0.3 ms"),
        ("added first byte, stream, c=16", f"{m('ttfb_c16_direct'):.2f} ms", f"{m('ttfb_c16_added'):+.2f} ms", "≤ +1 ms"),
        ("requests/s, JSON, c=64", f"{m('json_c64_direct'):,.0f}", f"{m('json_c64_product'):,.0f}", "≥ 5,000"),
        ("requests/s, stream, c=64", f"{m('stream_c64_direct'):,.0f}", f"{m('stream_c64_product'):,.0f}", "≥ 3,000"),
        ("CPU per JSON request, c=64", "–", f"{m('json_c64_cpu_ms'):.2f} ms", "≤ 0.4 ms"),
        ("CPU per 26-event stream, c=64", "–", f"{m('stream_c64_cpu_ms'):.2f} ms", "≤ 0.8 ms"),
        ("50 ms upstream, c=64: share, JSON / stream", "100%", f"{m('slow_json_share'):.0f}% / {m('slow_stream_share'):.0f}%", "≥ 98% / ≥ 98%"),
        ("50 ms upstream, c=1: added p50 / first byte", "–", f"{m('slow_c1_added_p50'):+.2f} / {m('slow_c1_added_ttfb'):+.2f} ms", "≤ +0.3 ms"),
        ("50 ms upstream, c=1: CPU per request", "–", f"{m('slow_c1_cpu_ms'):.2f} ms", "≤ 1 ms"),
    ]  # fmt: skip
    print("| figure | direct | aiapi | target |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_idle(idle: dict[str, float]) -> None:
    print(f"\nidle CPU of the product: {sum(idle.values()):.2f}% of one core ("
          + ", ".join(f"{n} {v:.2f}%" for n, v in sorted(idle.items(), key=lambda x: -x[1]))
          + ")")  # fmt: skip


async def run(args: argparse.Namespace, stack: LocalStack, product: FakeUpstream, direct: FakeUpstream, scratch: Path) -> bool:  # fmt: skip
    keys = await make_keys(stack, args.accounts)
    bench = Bench(stack, product, direct, keys, args.seconds, scratch, profile_dir=args.profile)
    bench.strace_dir = args.strace
    for directory in (args.profile, args.strace):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
    await warm_up(bench)
    # At rest first: after the loads, leases and lingers of the last one would still be working.
    idle = await bench.idle(args.idle_seconds, 1.0 if args.quick else args.rest, args.profile)
    if args.only == "idle":  # the figure at rest alone: no loads, no books to check
        print_idle(idle)
        return True
    if args.only == "long":
        args.rounds = 0
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        await bench.round()
    rates = await bench.rates(args.rates) if args.rates else []
    long_runs = {conns: await bench.long_streams(conns, args.long_window) for conns in args.long}

    b = bench
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, edge workers: {edge_workers(args)}, {args.rounds} round(s) of {args.seconds:g} s, medians\n")  # fmt: skip
    if args.rounds:
        print_table(bench)
    print_idle(idle)
    if "vacuum_ms" in b.figures:
        print(f"VACUUM (ANALYZE) before each low-rate window, outside it: {b.median('vacuum_ms'):.0f} ms of PostgreSQL CPU (median)")  # fmt: skip
    for figure in ("json_c64_cpu_ms", "stream_c64_cpu_ms", "slow_c1_cpu_ms"):
        split = {k.split(":")[1]: b.median(k) for k in b.figures if k.startswith(figure + ":")}
        if not split:
            continue
        print(f"{figure} by process: " + ", ".join(f"{n} {v:.2f}" for n, v in sorted(split.items(), key=lambda x: -x[1])))  # fmt: skip
    for kind in ("json", "stream"):
        calls = {k.split(":")[1]: b.median(k) for k in b.figures if k.startswith(f"{kind}_c64_syscalls:")}  # fmt: skip
        if calls:
            top = sorted(((v, n) for n, v in calls.items() if n != "total"), reverse=True)[:8]
            each = ", ".join(f"{n} {v:.2f}" for v, n in top)
            total = calls.get("total", 0.0)
            print(f"{kind} c=64, edge system calls per request (strace -c): {total:.2f} ({each})")
    for rate, got, cpu in rates:
        print(f"50 ms upstream at {rate:>5} requests/s (got {got:,.0f}): {cpu:.2f} ms CPU per request")  # fmt: skip
    for conns, f in long_runs.items():
        print(
            f"{conns} long streams (50 ms, 200 events 20 ms apart), steady over {f['window']:g} s:"
            f" {f['steady_share']:.1f}% of direct streams/s ({f['steady_rate']:,.0f}/s against"
            f" {f['steady_direct_rate']:,.0f}; every stream's 4 s: {conns / LONG_LIFE_S:,.0f}), first byte"
            f" p99 added {f['steady_p99_added']:+.1f} ms (p50 {f['steady_p50_added']:+.1f}; direct"
            f" p99 {f['steady_direct_p99']:.1f}); opening burst: {f['share']:.0f}% of direct"
            f" streams/s, first byte p99 added {f['p99_added']:+.1f} ms (p50 {f['p50_added']:+.1f});"
            f" memory per open stream {f['steady_kib_per_stream']:.1f} KiB in the steady window"
            f" (peak over both runs {f['kib_per_stream']:.1f}), CPU per stream"
            f" {f['cpu_ms']:.1f} ms (edge {f['edge_cpu_ms']:.1f}, about"
            f" {f['edge_cpu_ms'] * 1000 / LONG_EVENTS:.1f} µs per event); {f['streams']:.0f} streams,"
            f" {f['failed']:.0f} failed (direct: {f['direct_failed']:.0f} failed); admitted by"
            f" a billing round trip of their own (a hold, not a lease): {f['burst_holds']:.0f} of"
            f" the burst run's {f['burst_streams']:.0f}, {f['steady_holds']:.0f} of the steady"
            f" run's {f['steady_streams']:.0f}"
        )
    # The leases of the last load are handed back (unused for IDLE_CLOSE_S): holds released.
    await asyncio.sleep(0 if args.quick else IDLE_CLOSE_S + 1.0)
    billed = await bench.settled()
    sent = await asyncio.to_thread(product.count)
    ok, verdict = check_books(stack, sent)
    deadline = time.monotonic() + 30
    while not ok and billed >= sent and time.monotonic() < deadline:  # holds still closing
        await asyncio.sleep(1.0)
        ok, verdict = check_books(stack, sent)
    print(f"books: {verdict}: {'BALANCED' if ok else 'MISMATCH'}")
    print(f"client errors (non-2xx, socket errors): {bench.errors}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load")
    parser.add_argument(
        "--accounts",
        type=int,
        help="accounts (on the run's plan) the load is spread over (default 40; --quick: 8)",
    )
    parser.add_argument("--long", default="1000,5000", help="concurrent long streams, or ''")
    parser.add_argument(
        "--long-window",
        type=float,
        default=12.0,
        help="seconds of the long streams' steady window (a stream lives 4 s)",
    )
    parser.add_argument("--rates", default="10,100,1000", help="open-loop rates, or ''")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--rest",
        type=float,
        default=REST_S,
        help=f"rest after the warm-up before the idle figure (default {REST_S:g} s: the edge's"
        " lease idle close and 2 s)",
    )
    parser.add_argument(
        "--only",
        choices=("idle", "long"),
        help="measure only this (after the warm-up): the idle CPU, or it and the long streams"
        " and --rates (no rounds)",
    )
    parser.add_argument("--profile", type=Path, help="write py-spy flame graphs (SVG) here")
    parser.add_argument(
        "--strace",
        type=Path,
        help="count the edge's system calls per request in the c=64 loads (strace -c), files here",
    )
    parser.add_argument(
        "--edge-workers",
        type=int,
        default=0,
        help="edge worker processes (default 0: one per CPU, as `aiapi up` runs it)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.idle_seconds = 1, 1.0, 2.0
        args.long, args.rates = "20", "20"
        args.long_window = 2.0
    if args.accounts is None:
        args.accounts = 8 if args.quick else 40
    args.long = [int(n) for n in args.long.split(",") if n]
    args.rates = [int(n) for n in args.rates.split(",") if n]
    ensure_package(Path("/usr/bin/wrk"), "wrk")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of streams (children too)
    with tempfile.TemporaryDirectory(prefix="aiapi-performance-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)
        product, direct = FakeUpstream.start(), FakeUpstream.start()
        try:
            edge_env = {
                "AIAPI_UPSTREAM_URL": product.url,
                "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
                "AIAPI_EDGE_WORKERS": str(edge_workers(args)),
            }
            stack = start_stack(scratch, edge_env=edge_env)
            try:
                ok = uvloop.run(run(args, stack, product, direct, scratch))
            finally:
                stack.stop()
        finally:
            product.stop()
            direct.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
