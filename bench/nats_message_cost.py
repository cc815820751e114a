"""What a NATS message costs nats-server, by kind, alone and in bursts.

    .venv/bin/python bench/nats_message_cost.py [--messages 2000] [--pace 100]

One nats-server (the wheel's, JetStream on file storage, as the product runs it) and one client
through :class:`aiapi_shared.bus.Bus`. For each kind, the server's CPU (/proc, user + system) over
``--messages`` messages, less what it spent idle over as long, per message:

* a JetStream publish and its ack; then the same with a durable consumer attached (the
  difference is a delivery, its ack and the consumer's share of pull requests);
* a KV put and its ack with no watch, one watch, two watches (a balance snapshot and the edge
  workers that watch the bucket).

"alone": one message every 1/``--pace`` s (each one a wake-up of the server); "in bursts":
publishes of 64 at a time (``Bus.publish_batch``), flat out.

Then the client's side: this process's CPU (``time.process_time``) per message a batch consumer
(``Bus.consume_batches``, batches of 256, each message acked) takes off a stream of ``--backlog``
messages. Run it with another checkout first on ``PYTHONPATH`` to compare two versions of the bus.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.bus import Bus, Msg, StreamSpec

SPEC = StreamSpec("COST", ("cost.v1.>",))
BUCKET = "aiapi_cost"
BURST = 64


def server_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    def __init__(self, bus: Bus, pid: int, messages: int, pace: float) -> None:
        self.bus, self.pid, self.messages, self.pace = bus, pid, messages, pace
        self.serial = 0
        self.idle_per_s = 0.0

    async def idle(self) -> None:
        start = server_cpu_s(self.pid)
        await asyncio.sleep(5.0)
        self.idle_per_s = (server_cpu_s(self.pid) - start) / 5.0

    async def per_message_us(self, send: Callable[[int], Awaitable[None]], alone: bool) -> float:
        await asyncio.sleep(1.0)  # what came before settles
        start, began = server_cpu_s(self.pid), time.monotonic()
        if alone:
            for _ in range(self.messages):
                await send(1)
                await asyncio.sleep(1 / self.pace)
        else:
            for _ in range(self.messages // BURST):
                await send(BURST)
        await asyncio.sleep(0.5)  # deliveries and acks still in flight
        spent = server_cpu_s(self.pid) - start
        spent -= self.idle_per_s * (time.monotonic() - began)
        return spent / self.messages * 1e6

    def ids(self, n: int) -> list[str]:
        self.serial += n
        return [f"m{i}" for i in range(self.serial - n, self.serial)]

    async def publish(self, n: int) -> None:
        if n == 1:
            await self.bus.publish("cost.v1.x", b"x" * 600, self.ids(1)[0])
            return
        messages = [(msg_id, "cost.v1.x", b"x" * 600) for msg_id in self.ids(n)]
        await self.bus.publish_batch(messages)


async def measure(url: str, pid: int, args: argparse.Namespace) -> None:
    bus = await Bus.connect(url, name="cost")
    meter = Meter(bus, pid, args.messages, args.pace)
    await bus.ensure_stream(SPEC)
    kv = await bus.ensure_kv(BUCKET)
    await meter.idle()
    print(f"nats-server idle: {meter.idle_per_s * 1000:.2f} ms/s")
    stop = asyncio.Event()

    async def ack_it(msg: Msg) -> None:
        return None

    async def put(n: int) -> None:
        for msg_id in meter.ids(n):
            await kv.put(f"acc_{int(msg_id[1:]) % 40}", b"y" * 200)

    rows: list[tuple[str, float, float]] = []

    async def row(label: str, send: Callable[[int], Awaitable[None]]) -> None:
        alone = await meter.per_message_us(send, alone=True)
        burst = await meter.per_message_us(send, alone=False)
        rows.append((label, alone, burst))

    await row("publish + ack", meter.publish)
    consumer = asyncio.create_task(
        bus.consume(stream="COST", durable="cost", subject="cost.v1.>", handler=ack_it, stop=stop)
    )
    await row("publish + ack, one consumer (delivery + ack)", meter.publish)
    await row("KV put + ack, no watch", put)
    watches = []
    for n in (1, 2):
        watches.append(asyncio.create_task(bus.watch_kv(BUCKET, lambda k, v: None, stop=stop)))
        await row(f"KV put + ack, {n} watch{'es' if n > 1 else ''}", put)
    stop.set()
    await asyncio.gather(consumer, *watches)
    client_us = await consumer_cpu_us(bus, args.backlog)
    await bus.close()
    print(f"\nnats-server CPU per message, µs (alone: {args.pace:g}/s; bursts of {BURST})")
    print("| kind | alone | in bursts |\n|---|---|---|")
    for label, alone, burst in rows:
        print(f"| {label} | {alone:.0f} | {burst:.0f} |")
    print(
        f"\nclient CPU per message consumed and acked (a backlog of {args.backlog}): {client_us:.1f} µs"
    )


async def consumer_cpu_us(bus: Bus, backlog: int) -> float:
    await bus.ensure_stream(StreamSpec("BACKLOG", ("backlog.v1.>",)))
    for start in range(0, backlog, BURST):
        batch = [(f"b{i}", "backlog.v1.x", b"z" * 600) for i in range(start, start + BURST)]
        await bus.publish_batch(batch)
    done, stop = 0, asyncio.Event()

    async def handler(msgs: list[Msg]) -> list[BaseException | None]:
        nonlocal done
        done += len(msgs)
        if done >= backlog:
            stop.set()
        return [None] * len(msgs)

    began = time.process_time()
    await bus.consume_batches(
        stream="BACKLOG", durable="backlog", subject="backlog.v1.>", handler=handler, stop=stop
    )
    return (time.process_time() - began) / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pace", type=float, default=100.0, help="messages/s when alone")
    parser.add_argument("--backlog", type=int, default=20000, help="messages the consumer takes")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aiapi-nats-cost-") as tmp:
        server = EmbeddedNats(Path(tmp) / "nats")
        server.start()
        try:
            assert server.pid is not None
            uvloop.run(measure(server.url, server.pid, args))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
