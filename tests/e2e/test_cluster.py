"""The product on a three-node JetStream cluster, every stream and bucket at three replicas: under
load, the node leading the USAGE stream is killed (SIGKILL: a lost machine), then, once it is back,
the node that took over; traffic continues, and at the end every answered request was settled
exactly once (balances moved by exactly the sum of the answers' costs, no money left held, the
auditor clean). Then two edges and two billing replicas settle the same load with exact books.

One node at a time: three nodes keep a quorum with one down; with two down JetStream stops taking
writes by design (the edges then keep usage in their spools until a quorum is back).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_shared.settings import NatsConnectOptions
from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.testing import running_simulator
from aiapi_testkit.dbroles import service_roles
from aiapi_testkit.nats_cluster import NatsCluster, NatsNode
from aiapi_testkit.plugin import SpawnFn, admin_options
from aiapi_testkit.process import internal_env

from .conftest import LEASE_WINDOW_S
from .load import REQUESTS_PER_ACCOUNT, Customer, Outcomes, books_exact, open_customers, send
from .support import ADMIN_TOKEN, Deployment, available, balance, eventually

pytestmark = pytest.mark.slow

CUSTOMERS = 8  # 320 requests a run, none refused for the plan's rate


def _start(
    spawn: SpawnFn,
    env: dict[str, str],
    tmp_path: Path,
    *,
    edges: int,
    billings: int,
    login: Callable[[str], dict[str, str]],
) -> Deployment:
    """billing x ``billings``, accounts, edge x ``edges``: each its own process and ports, each
    database user with its own role (``AIAPI_<SERVICE>_DATABASE_URL`` in ``env``)."""
    processes = []
    edge_urls = []
    accounts_url = admin_url = ""
    for role, count in (("billing", billings), ("accounts", 1), ("edge", edges)):
        for index in range(count):
            port, admin_port = free_port(), free_port()
            own, ready = internal_env(  # each process its own internal listener
                {
                    **env,
                    f"AIAPI_{role.upper()}_PORT": str(port),
                    "AIAPI_ADMIN_PORT": str(admin_port),
                    "AIAPI_DATA_DIR": str(tmp_path / f"{role}-{index}"),
                }
            )
            if f"AIAPI_{role.upper()}_DATABASE_URL" in env:  # the edge has no database
                own["AIAPI_DATABASE_URL"] = env[f"AIAPI_{role.upper()}_DATABASE_URL"]
            processes.append(
                spawn(
                    [sys.executable, "-m", f"aiapi_{role}"],
                    env=own,
                    health_url=ready,
                    name=f"{role}-{index}",
                    timeout_s=60,
                )
            )
            if role == "edge":
                edge_urls.append(f"http://127.0.0.1:{port}")
            if role == "accounts":
                accounts_url = f"http://127.0.0.1:{port}"
                admin_url = f"http://127.0.0.1:{admin_port}"
    # The auditor reads the books as billing does.
    books = {**env, "AIAPI_DATABASE_URL": env["AIAPI_BILLING_DATABASE_URL"]}
    deployment = Deployment(
        edge_url=edge_urls[0],
        accounts_url=accounts_url,
        admin_url=admin_url,
        processes=processes,
        env=books,
        logins={name: login(name) for name in ("billing", "accounts", "edge")},
    )
    deployment.edge_urls = edge_urls  # type: ignore[attr-defined]
    return deployment


@pytest.fixture
def cluster_env(
    nats_cluster: NatsCluster, database_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    # As in production: the migrations job ran as the owner; each service has only data rights.
    with (
        service_roles(database_url, ["billing", "accounts"]) as roles,
        running_simulator(SimulatorConfig()) as upstream,
    ):
        roles.migrate_all()
        yield {
            "AIAPI_NATS_URL": nats_cluster.url,
            "AIAPI_NATS_REPLICAS": "3",
            "AIAPI_BILLING_DATABASE_URL": roles.url("billing"),
            "AIAPI_ACCOUNTS_DATABASE_URL": roles.url("accounts"),
            "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIAPI_COOKIE_SECURE": "false",
            "AIAPI_UPSTREAM_URL": upstream,
            "AIAPI_UPSTREAM_API_KEYS": "sk-ant-cluster-upstream",
            "AIAPI_LEASE_ADMIT_FOR_S": LEASE_WINDOW_S,
        }


async def _usage_leader(url: str, options: NatsConnectOptions) -> str | None:
    bus = await Bus.connect(url, name="aiapi-test-leader", options=options)
    try:
        try:
            info = await bus.js.stream_info("USAGE")
        except TimeoutError:  # a leader election in progress: ask again
            return None
        assert info.config.num_replicas == 3
        return info.cluster.leader if info.cluster else None
    finally:
        await bus.close()


def usage_leader(cluster: NatsCluster, options: NatsConnectOptions) -> NatsNode:
    name = eventually(lambda: asyncio.run(_usage_leader(cluster.url, options)), timeout_s=30)
    return cluster.node(name)


def _run_in_phases(
    deployment: Deployment,
    customers: list[Customer],
    phases: int,
    during: Callable[[Outcomes, list[threading.Event]], None],
) -> Outcomes:
    """Send the load from a thread in ``phases`` equal parts, each started when its gate is set;
    ``during(outcomes, gates)`` runs meanwhile in this thread (and sets the gates)."""
    outcomes = Outcomes()
    edges: list[str] = deployment.edge_urls  # type: ignore[attr-defined]
    gates = [threading.Event() for _ in range(phases)]
    per_phase = REQUESTS_PER_ACCOUNT // phases

    def load() -> None:
        for gate in gates:
            if not gate.wait(timeout=120):
                return
            send(edges, customers, per_phase, outcomes=outcomes)

    sender = threading.Thread(target=load)
    sender.start()
    try:
        during(outcomes, gates)
    finally:
        for gate in gates:
            gate.set()
        sender.join(timeout=120)
    assert not sender.is_alive()
    assert len(outcomes) == phases * per_phase * len(customers)
    return outcomes


def _books_report(
    deployment: Deployment,
    admin: httpx.Client,
    customers: list[Customer],
    options: NatsConnectOptions,
) -> str:
    """Why the books differ: per customer, what the client saw and what billing recorded."""
    lines = [
        "books not exact: answered, failed, unbilled nano | usage records, their cost, statuses"
    ]
    with psycopg.connect(deployment.env["AIAPI_DATABASE_URL"]) as conn:
        for c in customers:
            count, cost, statuses = conn.execute(
                "SELECT count(*), coalesce(sum(cost), 0), array_agg(DISTINCT status_code)"
                " FROM billing.usage_records WHERE account_id = %s",
                (c.account_id,),
            ).fetchone() or (0, 0, [])
            unbilled = c.start_nano - c.spent_nano - balance(admin, c.account_id)
            lines.append(
                f"{c.answered}, {c.failed}, {unbilled} | {count}, {cost} vs {c.spent_nano}, {statuses}"
            )
    lines.append(asyncio.run(_consumer_report(deployment.env["AIAPI_NATS_URL"], options)))
    return "\n".join(lines)


async def _consumer_report(url: str, options: NatsConnectOptions) -> str:
    bus = await Bus.connect(url, name="aiapi-test-report", options=options)
    try:
        stream = await bus.js.stream_info("USAGE")
        consumer = await bus.js.consumer_info("USAGE", "billing-settlement")
        return (
            f"USAGE: {stream.state.messages} messages, leader {stream.cluster}; "
            f"billing-settlement: pending {consumer.num_pending}, ack pending "
            f"{consumer.num_ack_pending}, delivered {consumer.delivered}, ack floor "
            f"{consumer.ack_floor}, waiting {consumer.num_waiting}, cluster {consumer.cluster}"
        )
    finally:
        await bus.close()


def _settled_exactly_once(
    deployment: Deployment, customers: list[Customer], options: NatsConnectOptions
) -> None:
    with deployment.admin() as admin:
        try:
            eventually(lambda: books_exact(admin, customers), timeout_s=60, every_s=0.5)
        except AssertionError:
            raise AssertionError(_books_report(deployment, admin, customers, options)) from None
        # No money left held: every hold settled or released, every lease handed back or expired.
        eventually(
            lambda: all(
                available(admin, c.account_id) == balance(admin, c.account_id) for c in customers
            ),
            timeout_s=60,
            every_s=0.5,
        )
    audit = deployment.audit()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_losing_the_usage_leader_and_then_another_node_settles_every_request_once(
    nats_cluster: NatsCluster,
    nats_users: NatsUsers,
    cluster_env: dict[str, str],
    spawn: SpawnFn,
    tmp_path: Path,
) -> None:
    nats_admin = admin_options(nats_users)
    deployment = _start(spawn, cluster_env, tmp_path, edges=1, billings=1, login=nats_users.env)
    with deployment.admin() as admin:
        customers = open_customers(admin, CUSTOMERS, "20.00")
    phase = CUSTOMERS * (REQUESTS_PER_ACCOUNT // 3)
    total = 3 * phase
    killed: list[tuple[str, int]] = []  # (node, requests finished when it was killed)

    def lose_nodes(outcomes: Outcomes, gates: list[threading.Event]) -> None:
        def finished(count: int) -> None:
            eventually(lambda: len(outcomes) >= count, timeout_s=90)

        gates[0].set()
        finished(phase // 2)  # requests in flight: lose the USAGE leader
        first = usage_leader(nats_cluster, nats_admin)
        first.kill()
        killed.append((first.name, len(outcomes)))
        finished(phase)
        gates[1].set()  # a whole phase with one node down
        finished(phase + phase // 2)
        nats_cluster.restart(first)  # back under load, catching up from the others
        finished(2 * phase)
        second = usage_leader(nats_cluster, nats_admin)  # asked before the load resumes
        if second is first:  # it may have won the leadership back: lose another node anyway
            second = next(n for n in nats_cluster.nodes if n is not first)
        gates[2].set()
        finished(2 * phase + phase // 4)
        second.kill()
        killed.append((second.name, len(outcomes)))
        finished(total)
        nats_cluster.restart(second)

    outcomes = _run_in_phases(deployment, customers, 3, lose_nodes)
    assert len({name for name, _ in killed}) == 2
    # Traffic continued: requests finished after each loss were answered.
    for _, at in killed:
        assert at < total
        assert any(outcomes.finished[at:]), killed
    answered = sum(c.answered for c in customers)
    print(f"answered {answered} of {total}; lost nodes {killed}")
    assert answered >= total * 9 // 10, [c.failed for c in customers]
    _settled_exactly_once(deployment, customers, admin_options(nats_users))


def test_two_edges_and_two_billing_replicas_on_the_cluster_keep_exact_books(
    cluster_env: dict[str, str], nats_users: NatsUsers, spawn: SpawnFn, tmp_path: Path
) -> None:
    deployment = _start(spawn, cluster_env, tmp_path, edges=2, billings=2, login=nats_users.env)
    with deployment.admin() as admin:
        customers = open_customers(admin, CUSTOMERS, "20.00")

    def release(_: Outcomes, gates: list[threading.Event]) -> None:
        gates[0].set()

    outcomes = _run_in_phases(deployment, customers, 1, release)
    assert all(outcomes.finished), [c.failed for c in customers]
    _settled_exactly_once(deployment, customers, admin_options(nats_users))
