"""Fixtures of the end-to-end tests: billing, accounts and the edge as processes."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_simulator.config import SimulatorConfig
from aiapi_simulator.testing import running_simulator
from aiapi_testkit.plugin import PostgresHandle, SpawnFn, running_nats, spawning
from aiapi_testkit.process import internal_env

from .support import ADMIN_TOKEN, Deployment

# Billing lets an edge admit with a lease for this long; short here, so that a test sees the
# edge hand its leases back within a few seconds.
LEASE_WINDOW_S = "2"


@pytest.fixture
def deployment(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
) -> Iterator[Deployment]:
    """Each service logs in to NATS as itself, with its own permissions only, as in production."""
    with deploy(database_url, strict_nats_server, nats_login, spawn, tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_deployment(
    postgres_server: PostgresHandle,
    nats_users: NatsUsers,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """One deployment (as ``deployment`` starts it) for the tests of a module that only add data
    of their own (an account, its keys, a customer) and look at nothing else: starting and
    stopping one takes seconds of CPU each time. A test that stops or restarts a service,
    changes what every customer gets (the catalogue, a plan, the upstream pool), or checks that
    nothing else happened takes ``deployment``, its own."""
    directory = tmp_path_factory.mktemp("shared-deployment")
    database_url = postgres_server.create_database()
    login = nats_users.env  # a strict server: each service logs in as itself
    try:
        with (
            running_nats(directory / "nats", nats_users.server_config()) as nats,
            spawning(directory, login) as spawn,
            deploy(database_url, nats, login, spawn, directory) as running,
        ):
            yield running
    finally:
        postgres_server.drop_database(database_url)


@contextlib.contextmanager
def deploy(
    database_url: str,
    nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
    *,
    extra_env: dict[str, str] | None = None,
    payments: bool = False,
) -> Iterator[Deployment]:
    """Billing, accounts and the edge (and payments, when asked) as processes on the simulator,
    each logged in to NATS as itself."""
    names = ("billing", "accounts", "edge", *(("payments",) if payments else ()))
    with running_simulator(SimulatorConfig()) as upstream:
        # Every listener's port chosen at once, so that no two are the same: the services start
        # side by side, none has bound its port yet when the next one's is chosen.
        listeners = ("edge", "accounts", "admin", *(f"{name}-internal" for name in names))
        ports = dict(zip(listeners, distinct_ports(len(listeners)), strict=True))
        env = {
            "AIAPI_NATS_URL": nats_server.url,
            "AIAPI_DATABASE_URL": database_url,
            "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIAPI_DATA_DIR": str(tmp_path / "data"),
            "AIAPI_EDGE_PORT": str(ports["edge"]),
            "AIAPI_ACCOUNTS_PORT": str(ports["accounts"]),
            "AIAPI_ADMIN_PORT": str(ports["admin"]),
            "AIAPI_COOKIE_SECURE": "false",
            "AIAPI_UPSTREAM_URL": upstream,
            "AIAPI_UPSTREAM_API_KEYS": "sk-ant-e2e-upstream",
            "AIAPI_LEASE_ADMIT_FOR_S": LEASE_WINDOW_S,
            "AIAPI_LOG_LEVEL": "DEBUG",
            **(extra_env or {}),
        }
        processes = []
        for name in names:
            # each process its own NATS login and internal listener
            internal = {"AIAPI_INTERNAL_PORT": str(ports[f"{name}-internal"])}
            own, ready = internal_env({**env, **nats_login(name), **internal})
            processes.append(
                spawn(
                    [sys.executable, "-m", f"aiapi_{name}"],
                    env=own,
                    health_url=ready,
                    name=name,
                    wait=False,
                )
            )
        # Started side by side (each waits for what it needs from the others, as under `aiapi
        # up`): a deployment is up in the time of its slowest service, not of all of them.
        for process in processes:
            process.wait_healthy(timeout_s=60)
        yield Deployment(
            edge_url=f"http://127.0.0.1:{ports['edge']}",
            accounts_url=f"http://127.0.0.1:{ports['accounts']}",
            admin_url=f"http://127.0.0.1:{ports['admin']}",
            processes=processes,
            env=env,
            logins={name: nats_login(name) for name in names},
        )
    # Every service did its part with its own grants: nothing it tried was refused.
    assert nats_server.violations() == []


def distinct_ports(count: int) -> list[int]:
    """``count`` free loopback ports, all different (each socket held until all are chosen)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def second_edge(deployment: Deployment, spawn: SpawnFn, tmp_path: Path) -> str:
    """Another edge of the deployment (its own port and data directory); its URL."""
    port = free_port()
    env, ready = internal_env(
        {
            **deployment.env_of("edge"),
            "AIAPI_EDGE_PORT": str(port),
            "AIAPI_DATA_DIR": str(tmp_path / "second-edge"),
        }
    )
    spawn([sys.executable, "-m", "aiapi_edge"], env=env, health_url=ready, name="edge-2",
          timeout_s=60)  # fmt: skip
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def closer() -> Iterator[contextlib.ExitStack]:
    """Closes the SDK clients a test opened (an unclosed socket is an error under -W error)."""
    with contextlib.ExitStack() as stack:
        yield stack
