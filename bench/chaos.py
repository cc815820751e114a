"""The seeded fault run: the whole system under steady mixed load while faults strike at random
moments, then, after a bounded drain, the books must be exact.

The system runs as processes (``aiapi_testkit.stack``): embedded PostgreSQL and NATS with the
per-service users, two edges, two billing replicas, accounts, payments, and the simulator as the
upstream. Accounts on both plans with small balances (a few run dry: 402s) send JSON requests,
streams, OpenAI-route requests and streams they leave after the first bytes, to either edge.
A scheduler, seeded, strikes every few seconds with one of the faults (``--faults``):

``kill_edge``, ``kill_billing``, ``kill_accounts``, ``kill_payments`` (kill -9, restart),
``freeze`` (SIGSTOP an edge or a billing replica for longer than its lease window and the
consumers' ack wait, then SIGCONT), ``nats`` and ``postgres`` (stopped or killed, started
again), ``spool_full`` (NATS away while the edges spool, an edge killed with its spool full,
NATS back, the edge restarted), ``duplicate`` (usage events published again: with their
``Nats-Msg-Id``, and without it, as after the duplicate window), ``upstream_529`` (a burst of
overloaded answers), ``cut_stream`` (streams ended by an error event mid-way). With
``kill_payments_crediting`` (not in the default list: it needs anvil), payments follows an anvil
chain, deposits are sent to the customers all along (``chaos_deposits``), and the fault sends a
few at once, makes them final and kills payments while it confirms and credits them.

Every prompt carries a tag (account, route, sequence) and a padding that makes each request's
input tokens unique within its account, so that what the simulator served (``/_sim/requests``:
the usage each answer carried) and what billing settled (``usage_records``) can be matched one
to one without trusting the edge. The verdict, after the drain:

* lost: a request the simulator served that billing did not settle;
* double: a request settled more than once, or a settlement for a request never served;
* wrong: a settlement whose meters differ from what was served, or whose cost is not the
  catalogue's price (computed here, in fractions: ``aiapi_testkit.books``);
* held: holds or leases left open; audit: ``python -m aiapi_billing audit``'s findings;
* with deposits: each transfer sent credited exactly once, to its account, at its value.

Usage::

    .venv/bin/python bench/chaos.py --seed 7 --duration 600
    .venv/bin/python bench/chaos.py --seed 7 --duration 120 --verdict-json out.json

Prints one line: ``PASS``/``FAIL``, the counts, the faults by kind and the command that replays
the run (the same seed gives the same faults in the same order and the same requests; the
moments they meet differ with the machine's timing). Exit status 0 on PASS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import inspect
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiapi_shared.bus import Bus
from aiapi_testkit.anvil import running_anvil
from aiapi_testkit.books import Books, expected_cost, meters_of, read_books, read_deposits
from aiapi_testkit.stack import LocalStack, start_stack
from chaos_deposits import Depositor, DepositVerdict, deploy_token, judge_deposits, payments_env
from customers import open_account

LEASE_WINDOW_S = 3.0  # AIAPI_LEASE_ADMIT_FOR_S: a freeze lasts longer
ACK_WAIT_S = 5.0  # billing's consumers: a frozen replica's batch goes to the other one
HOLD_TTL_S = 20  # a killed edge's leases expire within the drain
FAULTS = (
    "kill_edge",
    "kill_billing",
    "kill_accounts",
    "kill_payments",
    "freeze",
    "nats",
    "postgres",
    "spool_full",
    "duplicate",
    "upstream_529",
    "cut_stream",
)
# Faults that need a chain (anvil): asked for by name, never in the default list (which the CI
# seed's schedule is drawn from).
CHAIN_FAULTS = ("kill_payments_crediting",)
# Streams paced (one token per 2.5 ms), and every request of the run recorded.
SIMULATOR_ARGS: tuple[str, ...] = ("--tokens-per-second", "400", "--ping-interval", "0.5")
SIMULATOR_ARGS += ("--max-recorded-requests", "2000000")
MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")
BALANCES_USD = ("0.002", "0.01", "0.05", "0.20", "1.00", "1.00")
TAG = re.compile(rb"chaos:(\d{3}):([ao]):(\d{6})")
ROUTES = {b"a": "anthropic", b"o": "openai"}


# -- accounts ---------------------------------------------------------------------------------


@dataclass
class Customer:
    index: int
    account_id: str
    key: str
    plan: str


async def open_accounts(
    http: aiohttp.ClientSession, stack: LocalStack, count: int, rng: random.Random
) -> list[Customer]:
    customers = []
    for i in range(count):
        plan = "basic" if i % 2 == 0 else "pro"
        credit = rng.choice(BALANCES_USD)
        account_id, key = await open_account(
            http, stack, label=f"chaos{i}", plan=plan, credit_usd=credit
        )
        customers.append(Customer(i, account_id, key, plan))
    return customers


# -- load -------------------------------------------------------------------------------------


@dataclass
class Load:
    statuses: Counter[str] = field(default_factory=Counter)
    # Each request's outcome as its client saw it, by account index and sequence (``007:000042``).
    outcomes: dict[str, str] = field(default_factory=dict)
    sent: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def prompt(customer: Customer, route: str, seq: int, tokens: int) -> str:
    """Fixed-width tag and directive, then 4 characters per sequence number: within an account,
    the input tokens grow by exactly one per request, so they name the request."""
    return f"chaos:{customer.index:03d}:{route}:{seq:06d} [[tokens: {tokens:02d}]] " + "." * (
        4 * seq
    )


async def one_request(
    http: aiohttp.ClientSession, edge: str, customer: Customer, rng: random.Random, seq: int
) -> str:
    kind = rng.choices(("json", "stream", "openai", "openai_stream", "leave"), (4, 3, 1, 1, 1))[0]
    model = rng.choice(MODELS)
    tokens = rng.randint(1, 40)
    stream = kind in ("stream", "openai_stream", "leave")
    route = "o" if kind.startswith("openai") else "a"
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 48,
        "messages": [{"role": "user", "content": prompt(customer, route, seq, tokens)}],
    }
    if stream:
        body["stream"] = True
    if route == "o":
        url = f"{edge}/v1/chat/completions"
        headers = {"authorization": f"Bearer {customer.key}"}
        if stream:
            body["stream_options"] = {"include_usage": True}
    else:
        url = f"{edge}/v1/messages"
        headers = {"x-api-key": customer.key, "anthropic-version": "2023-06-01"}
    async with http.post(
        url, data=orjson.dumps(body), headers={**headers, "content-type": "application/json"}
    ) as answer:
        if kind == "leave" and answer.status == 200:
            await answer.content.readany()  # the first bytes, then the client goes away
            answer.close()
            return "left"
        await answer.read()
        return str(answer.status)


async def customer_loop(
    http: aiohttp.ClientSession,
    stack: LocalStack,
    customer: Customer,
    seed: int,
    pause_s: float,
    load: Load,
) -> None:
    rng = random.Random(f"{seed}:{customer.index}")
    seq = 0
    while not load.stop.is_set():
        seq += 1
        edge = rng.choice(stack.edge_urls)
        try:
            outcome = await asyncio.wait_for(one_request(http, edge, customer, rng, seq), 90)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            outcome = type(exc).__name__
        load.sent += 1
        load.statuses[outcome] += 1
        load.outcomes[f"{customer.index:03d}:{seq:06d}"] = outcome
        # An account run dry asks again now and then, not in a loop.
        pause = 5.0 if outcome == "402" else rng.expovariate(1 / pause_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.stop.wait(), pause)


# -- faults -----------------------------------------------------------------------------------


@dataclass
class Chaos:
    stack: LocalStack
    rng: random.Random
    done: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    depositor: Depositor | None = None

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")
        print(f"  [chaos] {text}", flush=True)

    def pick(self, prefix: str) -> str:
        return self.rng.choice(sorted(n for n in self.stack.procs if n.startswith(prefix)))

    def kill(self, name: str) -> None:
        self.stack.procs[name].kill()
        time.sleep(self.rng.uniform(0.2, 3.0))
        self.stack.restart(name)

    def kill_edge(self) -> str:
        name = self.pick("edge")
        self.kill(name)
        return name

    def kill_billing(self) -> str:
        name = self.pick("billing")
        self.kill(name)  # under steady load a settlement batch is as good as always in flight
        return name

    def kill_accounts(self) -> str:
        self.kill("accounts")
        return "accounts"

    def kill_payments(self) -> str:
        self.kill("payments")
        return "payments"

    async def kill_payments_crediting(self) -> str:
        """Deposits made final at once, then payments killed while it confirms them, publishes
        their credits and records that billing credited them."""
        assert self.depositor is not None, "kill_payments_crediting needs the chain"
        count = self.rng.randint(2, 5)
        await self.depositor.send(count)
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # payments polls every 0.2 s
        await asyncio.to_thread(self.kill, "payments")
        return f"{count} deposits"

    def freeze(self) -> str:
        name = self.pick(self.rng.choice(("edge", "billing")))
        seconds = max(LEASE_WINDOW_S, ACK_WAIT_S) + self.rng.uniform(1.0, 4.0)
        self.stack.signal(name, signal.SIGSTOP)
        time.sleep(seconds)
        self.stack.signal(name, signal.SIGCONT)
        return f"{name} {seconds:.1f}s"

    def nats(self) -> str:
        hard = self.rng.random() < 0.5
        self.stack.nats.kill() if hard else self.stack.nats.stop()
        seconds = self.rng.uniform(1.0, 8.0)
        time.sleep(seconds)
        self.stack.nats.start()
        return f"{'kill' if hard else 'stop'} {seconds:.1f}s"

    def postgres(self) -> str:
        hard = self.rng.random() < 0.5
        self.stack.pg.kill() if hard else self.stack.pg.stop()
        seconds = self.rng.uniform(1.0, 8.0)
        time.sleep(seconds)
        self.stack.pg.start()
        return f"{'kill' if hard else 'stop'} {seconds:.1f}s"

    def spool_full(self) -> str:
        name = self.pick("edge")
        self.stack.nats.stop()
        time.sleep(self.rng.uniform(3.0, 8.0))  # the edges admit on leases and spool
        self.stack.procs[name].kill()
        self.stack.nats.start()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.stack.restart(name)  # its spool is relayed after the restart
        return name

    def upstream(self, fault: dict[str, Any]) -> str:
        sim_call(self.stack.sim_url, "POST", "/_sim/faults", fault)
        return f"{fault['fault']} x{fault['count']}"

    def upstream_clear(self) -> None:
        sim_call(self.stack.sim_url, "DELETE", "/_sim/faults")

    def upstream_529(self) -> str:
        return self.upstream({"fault": "529", "count": self.rng.randint(3, 30)})

    def cut_stream(self) -> str:
        fault = {"fault": "stream_error", "after": self.rng.randint(0, 6)}
        return self.upstream({**fault, "count": self.rng.randint(1, 6)})

    async def duplicate(self) -> str:
        bus = await Bus.connect(
            self.stack.nats.url, name="chaos", options=self.stack.admin_options()
        )
        copies = 0
        try:
            info = await bus.js.stream_info("USAGE")
            last = info.state.last_seq
            first = info.state.first_seq
            for _ in range(self.rng.randint(1, 5)):
                if last < first:
                    break
                raw = await bus.js.get_msg("USAGE", self.rng.randint(first, last))
                headers = dict(raw.headers or {})
                # Once with its id (NATS drops it within the window), once without it (as if
                # after the window: billing's unique key must drop it).
                subject = raw.subject or "usage.v1.request.recorded"
                await bus.js.publish(subject, raw.data or b"", headers=headers)
                await bus.js.publish(subject, raw.data or b"")
                copies += 2
        finally:
            await bus.close()
        return f"{copies} copies"

    async def strike(self, kind: str) -> None:
        self.note(f"{kind} ...")
        if inspect.iscoroutinefunction(getattr(self, kind)):
            what = await asyncio.wait_for(getattr(self, kind)(), 60)
        else:
            action: Callable[[], str] = getattr(self, kind)
            what = await asyncio.to_thread(action)
        self.done[kind] += 1
        self.note(f"{kind}: {what}")


async def run_faults(chaos: Chaos, kinds: list[str], until: float, every_s: float) -> None:
    while True:
        await asyncio.sleep(chaos.rng.uniform(0.3 * every_s, 1.7 * every_s))
        if time.monotonic() >= until:
            return
        kind = chaos.rng.choice(kinds)
        try:
            await chaos.strike(kind)
        except Exception as exc:  # a fault that could not be applied is part of the record
            chaos.note(f"{kind} FAILED to apply: {exc!r}")
            chaos.done[f"{kind}_failed"] += 1


def recover(stack: LocalStack) -> None:
    """Whatever a fault left down is started again before the drain (a supervisor's job)."""
    for name in list(stack.procs):
        stack.signal(name, signal.SIGCONT)
    if not stack.pg.running:
        stack.pg.start()
    if not stack.nats.running:
        stack.nats.start()
    for name, proc in stack.procs.items():
        if not proc.running:
            stack.restart(name)


# -- the verdict ------------------------------------------------------------------------------


@dataclass
class Verdict:
    requests: int = 0
    served: int = 0
    billed: int = 0
    lost: list[str] = field(default_factory=list)
    double: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    edge_died: int = 0  # answers cut because the edge went away mid-answer (see docs)
    retried_upstream: int = 0  # extra upstream answers for a request billed once
    open_holds: int = 0
    live_leases: int = 0
    held: int = 0
    audit: list[str] = field(default_factory=list)
    deposits: DepositVerdict | None = None  # with the chain only

    @property
    def ok(self) -> bool:
        deposits_ok = self.deposits is None or self.deposits.ok
        return (
            deposits_ok
            and not (self.lost or self.double or self.wrong or self.audit)
            and not (self.open_holds or self.live_leases or self.held)
        )


def sim_call(base: str, method: str, path: str, body: Any = None) -> Any:
    """One call of the simulator's control routes (loopback)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (our own http URL)
        base + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        return json.loads(answer.read())


def served_requests(sim_url: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = sim_call(sim_url, "GET", "/_sim/requests")["data"]
    return data


# What a client sees when the edge dies while answering it.
CUT_OFF = {"ServerDisconnectedError", "ClientPayloadError", "ClientOSError"}


def judge(
    recorded: list[dict[str, Any]],
    books: Books,
    customers: list[Customer],
    outcomes: dict[str, str],
) -> Verdict:
    by_index = {c.index: c for c in customers}
    by_account = {c.account_id: c for c in customers}
    verdict = Verdict(open_holds=books.open_holds, live_leases=books.live_leases, held=books.held)
    # What the simulator served, by request (account, route, input tokens).
    served: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for entry in recorded:
        if entry["path"] != "/v1/messages":
            continue
        tag = TAG.search(base64.b64decode(entry["body"]))
        if tag is None:
            continue
        verdict.requests += 1
        answer = entry.get("served")
        if not answer or answer.get("usage") is None:
            continue
        customer = by_index[int(tag.group(1))]
        meters = meters_of(answer["usage"])
        key = (customer.account_id, ROUTES[tag.group(2)], meters[0])
        cut_off = outcomes.get(f"{tag.group(1).decode()}:{tag.group(3).decode()}") in CUT_OFF
        served.setdefault(key, []).append(
            {**answer, "meters": meters, "tag": tag.group(0).decode(), "cut_off": cut_off}
        )
    verdict.served = len(served)
    billed: dict[tuple[str, str, int], list[Any]] = {}
    for row in books.usage:
        if row.account_id not in by_account or row.meters == (0, 0, 0, 0, 0):
            continue  # a failed request: nothing served, nothing charged
        billed.setdefault((row.account_id, row.route, row.meters[0]), []).append(row)
        verdict.billed += 1
        want = expected_cost(row.model, row.plan, row.meters, row.started_at)
        if row.cost != want:
            verdict.wrong.append(f"{row.request_id}: cost {row.cost}, price {want}")
    for key, answers in served.items():
        rows = billed.get(key, [])
        if not rows:
            # The edge died before it finished the answer: the upstream saw it go while pacing,
            # or the client's connection was cut. Nothing metered it; reported apart.
            if all(a["client_gone"] or a["cut_off"] for a in answers):
                verdict.edge_died += 1
            else:
                verdict.lost.append(f"{answers[0]['tag']} {key}")
            continue
        if len(rows) > 1:
            verdict.double.append(f"{answers[0]['tag']}: {[r.request_id for r in rows]}")
        if not any(a["meters"] == rows[0].meters for a in answers):
            got = [a["meters"] for a in answers]
            verdict.wrong.append(f"{answers[0]['tag']}: billed {rows[0].meters}, served {got}")
        verdict.retried_upstream += len(answers) - 1
    for key, rows in billed.items():
        if key not in served:
            verdict.double.append(f"billed, never served: {[r.request_id for r in rows]}")
    return verdict


def run_audit(stack: LocalStack) -> list[str]:
    env = {**os.environ, **stack.env_of("billing-1")}
    done = subprocess.run(
        [sys.executable, "-m", "aiapi_billing", "audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        findings: list[str] = json.loads(done.stdout)["findings"]
    except (ValueError, KeyError):
        return [f"audit did not run: {done.stdout[-500:]} {done.stderr[-1500:]}"]
    return findings


async def drain(
    stack: LocalStack,
    customers: list[Customer],
    outcomes: dict[str, str],
    timeout_s: float,
    depositor: Depositor | None,
) -> Verdict:
    """Until every served request is settled, every deposit credited and nothing is held, or
    the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        recorded = await asyncio.to_thread(served_requests, stack.sim_url)
        try:
            books = await asyncio.to_thread(read_books, stack.pg.url)
            deposits = await asyncio.to_thread(read_deposits, stack.pg.url) if depositor else None
        except Exception as exc:  # PostgreSQL still coming back
            print(f"  [drain] books unreadable: {exc!r}")
            await asyncio.sleep(2)
            continue
        verdict = judge(recorded, books, customers, outcomes)
        if depositor is not None and deposits is not None:
            verdict.deposits = judge_deposits(depositor.sent, *deposits)
        if verdict.ok or time.monotonic() > deadline:
            verdict.audit = await asyncio.to_thread(run_audit, stack)
            return verdict
        waiting = verdict.deposits.sent - verdict.deposits.credited if verdict.deposits else 0
        print(
            f"  [drain] lost {len(verdict.lost)} holds {verdict.open_holds}"
            f" leases {verdict.live_leases} held {verdict.held} deposits waiting {waiting}",
            flush=True,
        )
        await asyncio.sleep(3)


# -- the run ----------------------------------------------------------------------------------


async def chaos_run(
    stack: LocalStack, args: argparse.Namespace, chain: tuple[str, str] | None
) -> tuple[Verdict, Chaos, Load]:
    """``chain``: anvil's RPC URL and the USDT contract, when deposits are driven."""
    rng = random.Random(args.seed)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    depositor = None
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        customers = await open_accounts(http, stack, args.accounts, rng)
        await asyncio.sleep(2)  # the edges learn the keys from KV
        load = Load()
        pause_s = args.accounts / args.rate
        workers = [
            asyncio.create_task(customer_loop(http, stack, c, args.seed, pause_s, load))
            for c in customers
        ]
        if chain is not None:
            accounts = [c.account_id for c in customers]
            depositor = await Depositor.open(*chain, stack, accounts, args.seed)
            workers.append(
                asyncio.create_task(depositor.keep_sending(args.deposit_every, load.stop))
            )
        chaos = Chaos(stack, rng, depositor=depositor)
        kinds = [k for k in args.faults.split(",") if k]
        until = time.monotonic() + args.duration
        await run_faults(chaos, kinds, until, args.every)
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        load.stop.set()
        await asyncio.gather(*workers)
    await asyncio.to_thread(recover, stack)
    await asyncio.to_thread(chaos.upstream_clear)
    try:
        verdict = await drain(stack, customers, load.outcomes, args.drain, depositor)
    finally:
        if depositor is not None:
            await depositor.close()
    return verdict, chaos, load


def verdict_line(args: argparse.Namespace, verdict: Verdict, chaos: Chaos, load: Load) -> str:
    faults = ",".join(f"{k}={v}" for k, v in sorted(chaos.done.items()))
    return (
        f"{'PASS' if verdict.ok else 'FAIL'} seed={args.seed} duration={args.duration:g}s"
        f" requests={load.sent} upstream_requests={verdict.requests} served={verdict.served}"
        f" billed={verdict.billed} lost={len(verdict.lost)} double={len(verdict.double)}"
        f" wrong={len(verdict.wrong)} edge_died={verdict.edge_died}"
        f" retried_upstream={verdict.retried_upstream} holds_left={verdict.open_holds}"
        f" leases_left={verdict.live_leases} audit={'clean' if not verdict.audit else len(verdict.audit)}"
        f"{deposits_part(verdict.deposits)}"
        f" faults[{sum(chaos.done.values())}]={faults}"
        f" | replay: bench/chaos.py --seed {args.seed} --duration {args.duration:g}"
        f"{' --faults ' + args.faults if args.faults != ','.join(FAULTS) else ''}"
    )


def deposits_part(deposits: DepositVerdict | None) -> str:
    if deposits is None:
        return ""
    return (
        f" deposits={deposits.sent} credited={deposits.credited}"
        f" deposits_lost={len(deposits.lost)} deposits_double={len(deposits.double)}"
        f" deposits_wrong={len(deposits.wrong)} deposits_unfinished={len(deposits.unfinished)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load and faults")
    parser.add_argument("--accounts", type=int, default=24)
    parser.add_argument("--rate", type=float, default=12.0, help="requests/s, all accounts")
    parser.add_argument("--every", type=float, default=8.0, help="mean seconds between faults")
    parser.add_argument("--drain", type=float, default=300.0, help="bound on the final drain, s")
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"kinds, comma-separated; also {', '.join(CHAIN_FAULTS)} (starts anvil)",
    )
    parser.add_argument(
        "--deposit-every", type=float, default=5.0, help="mean seconds between deposits (chain)"
    )
    parser.add_argument("--verdict-json", type=Path, help="write the verdict here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = parser.parse_args()
    unknown = set(args.faults.split(",")) - set(FAULTS) - set(CHAIN_FAULTS) - {""}
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    data = Path(tempfile.mkdtemp(prefix="aiapi-chaos-"))
    data.chmod(0o755)
    print(f"chaos seed={args.seed} duration={args.duration:g}s data={data}", flush=True)
    with contextlib.ExitStack() as anvil:
        chain = None
        chain_env: dict[str, str] = {}
        if set(args.faults.split(",")) & set(CHAIN_FAULTS):
            rpc_url = anvil.enter_context(running_anvil(data / "anvil.log"))
            token, start_block = asyncio.run(deploy_token(rpc_url))
            chain, chain_env = (rpc_url, token), payments_env(rpc_url, token, start_block)
        ok = run(data, args, chain, chain_env)
    sys.exit(0 if ok else 1)


def run(
    data: Path, args: argparse.Namespace, chain: tuple[str, str] | None, chain_env: dict[str, str]
) -> bool:
    stack = start_stack(
        data,
        edges=2,
        billings=2,
        payments=True,
        simulator_args=SIMULATOR_ARGS,
        env={
            "AIAPI_LEASE_ADMIT_FOR_S": str(LEASE_WINDOW_S),
            "AIAPI_CONSUMER_ACK_WAIT_S": str(ACK_WAIT_S),
            "AIAPI_HOLD_TTL_S": str(HOLD_TTL_S),
            "AIAPI_HOLD_SWEEP_INTERVAL_S": "1",
        },
        edge_env={"AIAPI_EDGE_SPOOL_MAX_ROWS": "400"},
        payments_env=chain_env,
    )
    ok = False
    try:
        verdict, chaos, load = asyncio.run(chaos_run(stack, args, chain))
        ok = verdict.ok
        line = verdict_line(args, verdict, chaos, load)
        print(line, flush=True)
        for title, items in (
            ("lost", verdict.lost),
            ("double", verdict.double),
            ("wrong", verdict.wrong),
            ("audit", verdict.audit),
            *(verdict.deposits.problems() if verdict.deposits is not None else ()),
        ):
            for item in items[:20]:
                print(f"  {title}: {item}")
        print(f"  client outcomes: {dict(load.statuses)}")
        if args.verdict_json:
            args.verdict_json.write_text(
                json.dumps(
                    {
                        "ok": ok,
                        "line": line,
                        "seed": args.seed,
                        "requests": load.sent,
                        "served": verdict.served,
                        "billed": verdict.billed,
                        "lost": verdict.lost,
                        "double": verdict.double,
                        "wrong": verdict.wrong,
                        "edge_died": verdict.edge_died,
                        "open_holds": verdict.open_holds,
                        "live_leases": verdict.live_leases,
                        "held": verdict.held,
                        "audit": verdict.audit,
                        "deposits": None
                        if verdict.deposits is None
                        else {
                            "sent": verdict.deposits.sent,
                            "credited": verdict.deposits.credited,
                            "lost": verdict.deposits.lost,
                            "double": verdict.deposits.double,
                            "wrong": verdict.deposits.wrong,
                            "unfinished": verdict.deposits.unfinished,
                        },
                        "faults": dict(chaos.done),
                        "outcomes": dict(load.statuses),
                        "log": chaos.log,
                        "data": str(data),
                    },
                    indent=2,
                )
            )
    finally:
        stack.stop()
        if ok and not args.keep:
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"  logs kept in {data}")
    return ok


if __name__ == "__main__":
    main()
