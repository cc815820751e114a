"""The whole system as processes on loopback, as ``aiapi up`` runs it, for the scripts that need
all of it at once (``bench/money_path.py``, ``bench/chaos.py``, ``bench/soak.py``).

An embedded PostgreSQL (fsync on) and nats-server with the product's per-service NATS users, the
simulator as the upstream, and any number of billing and edge replicas beside accounts (and,
when asked, payments). Every service logs in to NATS as itself; each edge has its own spool
directory and edge id. Any process can be killed, frozen and started again with the same
command line, ports and data (the servers too): that is what the fault runs do.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aiapi_cli.credentials import NatsUsers
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_cli.ports import free_port
from aiapi_shared.nats_permissions import ADMIN_USER
from aiapi_shared.settings import NatsConnectOptions
from pydantic import SecretStr

from aiapi_testkit.process import ServiceProcess, internal_env, stop_all

PY = sys.executable
UPSTREAM_KEY = "sk-ant-simulator-local"


@dataclass
class LocalStack:
    """Handles on the running system; :func:`start_stack` makes one."""

    data: Path
    pg: EmbeddedPostgres
    nats: EmbeddedNats
    nats_users: NatsUsers
    admin_token: str
    # Services by process name (``simulator``, ``billing-1``, ``accounts``, ``edge-2``, ...).
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    # Base URLs of what a client calls: ``simulator``, ``accounts``, ``admin`` (the operator
    # API, on accounts' own listener), each ``edge-N``.
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def sim_url(self) -> str:
        return self.urls["simulator"]

    @property
    def accounts_url(self) -> str:
        return self.urls["accounts"]

    @property
    def admin_url(self) -> str:
        return self.urls["admin"]

    @property
    def edge_urls(self) -> list[str]:
        return [url for name, url in sorted(self.urls.items()) if name.startswith("edge")]

    @property
    def edge_url(self) -> str:
        return self.edge_urls[0]

    def admin_options(self) -> NatsConnectOptions:
        """How an operator's tool logs in to this NATS (the full-rights ``admin`` user)."""
        password = SecretStr(self.nats_users.passwords[ADMIN_USER])
        return NatsConnectOptions(user=ADMIN_USER, password=password)

    def env_of(self, name: str) -> dict[str, str]:
        """The environment process ``name`` runs with (its own NATS login included)."""
        return dict(self.procs[name].env)

    def start(self, name: str, argv: list[str], env: dict[str, str], health_url: str) -> None:
        log = self.data / f"{name}.log"
        proc = ServiceProcess(argv, env=env, health_url=health_url, log_path=log)
        self.procs[name] = proc
        proc.start(timeout_s=90)

    def restart(self, name: str, *, timeout_s: float = 90.0) -> None:
        """Start process ``name`` again as it was (after a kill or a stop)."""
        self.procs[name].start(timeout_s=timeout_s)

    def signal(self, name: str, sig: signal.Signals) -> None:
        """``SIGSTOP``/``SIGCONT`` and the like, to a running process and its children (an edge
        is a supervisor and its workers): its own session's process group."""
        pid = self.procs[name].pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def pids(self) -> dict[str, int]:
        """The pid of every running process, the servers included."""
        found = {name: p.pid for name, p in self.procs.items() if p.running and p.pid}
        if self.pg.pid:
            found["postgres"] = self.pg.pid
        if self.nats.pid:
            found["nats"] = self.nats.pid
        return {name: pid for name, pid in found.items() if pid is not None}

    def stop(self) -> None:
        for name in self.procs:
            self.signal(name, signal.SIGCONT)  # a frozen process cannot stop
        stop_all(reversed(self.procs.values()), timeout_s=20)
        self.nats.stop()
        self.pg.stop()


def start_stack(
    data: Path,
    *,
    edges: int = 1,
    billings: int = 1,
    payments: bool = False,
    simulator_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    edge_env: dict[str, str] | None = None,
    payments_env: dict[str, str] | None = None,
) -> LocalStack:
    """Start everything in ``data`` (logs as ``<name>.log``), edges last: they need the rest.
    ``env`` is added to every service's environment, ``edge_env`` to the edges' only,
    ``payments_env`` to payments' (its chains, for a run that drives deposits)."""
    pg = EmbeddedPostgres(data / "pg", durable=True)
    users = NatsUsers.generate()  # as in production: each service its own NATS user
    nats = EmbeddedNats(data / "nats", authorization=users.server_config())
    stack = LocalStack(data, pg, nats, users, admin_token=secrets.token_urlsafe(24))
    try:
        extra = {"edge": edge_env or {}, "payments": payments_env or {}}
        _start_all(stack, edges, billings, payments, simulator_args, env or {}, extra)
    except BaseException:
        stack.stop()  # nothing left behind (a server holding its caller's pipes open, ...)
        raise
    return stack


def _start_all(
    stack: LocalStack,
    edges: int,
    billings: int,
    payments: bool,
    simulator_args: tuple[str, ...],
    env: dict[str, str],
    extra: dict[str, dict[str, str]],
) -> None:
    data, pg, nats, users = stack.data, stack.pg, stack.nats, stack.nats_users
    pg.start()
    nats.start()
    accounts_port, admin_port = free_port(), free_port()
    common = {
        "AIAPI_NATS_URL": nats.url,
        "AIAPI_DATABASE_URL": pg.url,
        "AIAPI_DATA_DIR": str(data / "services"),
        "AIAPI_ADMIN_TOKEN": stack.admin_token,
        "AIAPI_ACCOUNTS_PORT": str(accounts_port),
        "AIAPI_ADMIN_PORT": str(admin_port),
        "AIAPI_LOG_LEVEL": "WARNING",
        **env,
    }
    sim_port = free_port()
    stack.urls["simulator"] = f"http://127.0.0.1:{sim_port}"
    stack.start(
        "simulator",
        [PY, "-m", "aiapi_simulator", "--port", str(sim_port), *simulator_args],
        {},
        f"{stack.sim_url}/healthz",
    )

    def service(name: str, module: str, login: str, extra: dict[str, str]) -> None:
        # Each process its own internal listener (health, metrics): its readiness is waited on.
        env, ready = internal_env({**common, **users.env(login), **extra})
        stack.start(name, [PY, "-m", module], env, ready)

    for n in range(1, billings + 1):
        service(f"billing-{n}", "aiapi_billing", "billing", {})
    stack.urls["accounts"] = f"http://127.0.0.1:{accounts_port}"
    stack.urls["admin"] = f"http://127.0.0.1:{admin_port}"
    service("accounts", "aiapi_accounts", "accounts", {"AIAPI_COOKIE_SECURE": "false"})
    if payments:
        service("payments", "aiapi_payments", "payments", extra["payments"])
    for n in range(1, edges + 1):
        port = free_port()
        name = f"edge-{n}"
        stack.urls[name] = f"http://127.0.0.1:{port}"
        service(
            name,
            "aiapi_edge",
            "edge",
            {
                "AIAPI_EDGE_PORT": str(port),
                "AIAPI_EDGE_ID": name,
                "AIAPI_DATA_DIR": str(data / name),  # its own spool
                "AIAPI_UPSTREAM_URL": stack.sim_url,
                "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
                **extra["edge"],
            },
        )
