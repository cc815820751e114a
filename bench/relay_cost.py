"""What one usage event costs on its way out of an edge: the spool's append and the relay's
publish to JetStream, alone, against a real nats-server (issue #20, the relay's share).

    .venv/bin/python bench/relay_cost.py [--events 20000] [--rate 1600] [--burst 8] [--strace]

The driver appends ``--burst`` events at once (requests finishing in one event-loop iteration)
at ``--rate`` events a second, with the relay running as the edge runs it (its default
lingers), and waits until every event was acknowledged and deleted. It prints the CPU per event
of this process (the edge's share: the appends, the relay, nats-py) and of nats-server, from
``/proc``; with ``--strace`` also the system calls per event of this process (``strace -c -f``
attached for the measured window only). Several ``--rounds`` print each round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiapi_cli.embedded import EmbeddedNats
from aiapi_edge.settings import EdgeSettings
from aiapi_edge.spool import Spool
from aiapi_shared.bus import Bus, StreamSpec

TICKS = os.sysconf("SC_CLK_TCK")
PAYLOAD = b'{"request_id":"req_%06d","account_id":"acct_bench","usage":{"input_tokens":12}}' + (
    b" " * 400
)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def relay_publisher(bus: Bus) -> Callable[..., Awaitable[Any]]:
    """What the edge's service hands its relay, whichever API this checkout has."""
    batch = getattr(bus, "publish_batch", None)
    if batch is not None:

        async def publish_rows(rows: list[tuple[str, str, bytes]]) -> list[bool]:
            failures = await batch(rows, timeout_s=2.0)
            return [failure is None for failure in failures]

        return publish_rows

    async def publish(subject: str, payload: bytes, msg_id: str) -> None:
        await bus.publish(subject, payload, msg_id, timeout_s=2.0)

    return publish


async def one_round(nats: EmbeddedNats, args: argparse.Namespace, n: int) -> dict[str, float]:
    settings = EdgeSettings()
    bus = await Bus.connect(nats.url, name="relay-bench")
    await bus.ensure_stream(StreamSpec("USAGE", ("usage.v1.>",)))
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as directory:
        spool = Spool(Path(directory), max_rows=10_000_000)
        await spool.open()
        stop = asyncio.Event()
        relay = asyncio.ensure_future(
            spool.relay(
                relay_publisher(bus),
                stop,
                linger_s=settings.edge_relay_linger_s,
                linger_max_s=settings.edge_relay_linger_max_s,
            )
        )
        tracer = None
        if args.strace:
            out = Path(directory) / "strace.txt"
            argv = ["strace", "-c", "-f", "-o", str(out), "-p", str(os.getpid())]
            tracer = await asyncio.create_subprocess_exec(*argv, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # attached to every thread
        nats_pid = nats.pid
        assert nats_pid is not None  # started above
        own0, nats0, began = time.process_time(), cpu_s(nats_pid), time.monotonic()
        interval = args.burst / args.rate
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for first in range(0, args.events, args.burst):
            ids = range(first, min(first + args.burst, args.events))
            await asyncio.gather(
                *(spool.append(f"r{n}-{i}", "usage.v1.request.recorded", PAYLOAD % i) for i in ids)
            )
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        for _ in range(60_000):  # until every event was acknowledged and deleted (10 min at most)
            if not spool.depth:
                break
            await asyncio.sleep(0.01)
        own, nats_cpu = time.process_time() - own0, cpu_s(nats_pid) - nats0
        elapsed = time.monotonic() - began
        syscalls = 0.0
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)
            await tracer.wait()
            syscalls = _total_calls(out.read_text())
            if args.verbose:
                print(out.read_text())
        stop.set()
        await relay
        await spool.close()
    await bus.close()
    per = 1e6 / args.events
    return {
        "edge_us": own * per,
        "nats_us": nats_cpu * per,
        "syscalls": syscalls / args.events,
        "rate": args.events / elapsed,
    }


def _total_calls(report: str) -> float:
    for line in report.splitlines():
        fields = line.split()
        if fields and fields[-1] == "total":
            return float(fields[3])  # % time, seconds, usecs/call, calls, errors, "total"
    return 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1600.0, help="events a second")
    parser.add_argument("--burst", type=int, default=8, help="events appended together")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print strace's table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-nats-") as directory:
        nats = EmbeddedNats(Path(directory))
        nats.start()
        try:
            results = []
            for n in range(args.rounds):
                result = await one_round(nats, args, n)
                results.append(result)
                print(
                    f"round {n + 1}: {result['edge_us']:.1f} us edge, {result['nats_us']:.1f} us"
                    f" nats-server CPU per event, {result['syscalls']:.2f} system calls per"
                    f" event, {result['rate']:.0f} events/s"
                )
        finally:
            nats.stop()
    med = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(
        f"median of {args.rounds}: edge {med['edge_us']:.1f} us, nats-server {med['nats_us']:.1f}"
        f" us per event, {med['syscalls']:.2f} system calls per event ({args.events} events,"
        f" bursts of {args.burst} at {args.rate:.0f}/s, load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
