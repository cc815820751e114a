"""What ``aiapi up`` runs, as data: the services, their ports, commands and environment.

Pure, but for the port picker it is given: from the operator's environment and the resolved
infrastructure URLs, it says which processes to start and with what environment. ``up.py`` does
the starting.

Ports: the ones people type (the edge, the accounts customer API, the operator API) are fixed,
from the environment or their defaults; every internal listener (health, metrics) and the
simulator get a free port, so two stacks on one machine do not collide there. Every service of
a stack carries the stack's instance id (``AIAPI_INSTANCE_ID``), which its health answer names:
``aiapi up`` accepts a health answer only from its own processes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SIMULATOR_UPSTREAM_KEY = "sk-ant-simulator-local"

# Secrets a service must not inherit from the operator's environment unless its plan sets them:
# the edge never holds the database URL or the operator token, and a service logs in to NATS with
# its own credentials only.
_NATS_LOGIN = (
    "AIAPI_NATS_USER",
    "AIAPI_NATS_PASSWORD",
    "AIAPI_NATS_CREDS_FILE",
    "AIAPI_NATS_NKEY_FILE",
)
_SECRETS = ("AIAPI_DATABASE_URL", "AIAPI_ADMIN_TOKEN", "AIAPI_UPSTREAM_SEAL_PRIVATE_KEY")


@dataclass(frozen=True)
class ServiceSpec:
    """One child process. ``port`` is where its health is asked (a service's internal listener;
    the simulator's only port); ``instance_id`` is what that answer must name (None: any)."""

    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    health_path: str = "/readyz"
    instance_id: str | None = None
    # Variables of the operator's environment this process must not inherit (see _SECRETS).
    withheld: frozenset[str] = frozenset()

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.health_path}"

    def accepts(self, status: int, body: bytes) -> bool:
        """Whether a health answer says: ready, and this very process (not another stack's
        that happens to listen on the port)."""
        if status != 200:
            return False
        if self.instance_id is None:
            return True
        try:
            answer = json.loads(body)
        except ValueError:
            return False
        return isinstance(answer, dict) and (answer.get("service"), answer.get("instance")) == (
            self.name,
            self.instance_id,
        )


@dataclass(frozen=True)
class StackPlan:
    services: tuple[ServiceSpec, ...]
    uses_simulator: bool
    edge_port: int
    accounts_port: int
    admin_port: int
    instance_id: str
    edge_workers: int = 1

    @property
    def fixed_ports(self) -> dict[str, int]:
        """The ports taken from the environment or defaults (by setting), which must be free."""
        return {
            "AIAPI_EDGE_PORT": self.edge_port,
            "AIAPI_ACCOUNTS_PORT": self.accounts_port,
            "AIAPI_ADMIN_PORT": self.admin_port,
        }


class _Ports:
    """Free ports from ``pick``, never one twice in a plan, nor one of the fixed ports."""

    def __init__(self, pick: Callable[[], int], taken: set[int]) -> None:
        self._pick = pick
        self._taken = set(taken)

    def free(self) -> int:
        for _ in range(100):
            port = self._pick()
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise RuntimeError("no free port found")


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    return int(raw) if raw else default


def plan_stack(
    environ: Mapping[str, str],
    *,
    nats_url: str,
    database_url: str,
    data_dir: Path,
    admin_token: str,
    instance_id: str,
    pick_port: Callable[[], int],
    nats_logins: Mapping[str, Mapping[str, str]] | None = None,
    cpus: int | None = None,
    upstream_seal: tuple[str, str] | None = None,
) -> StackPlan:
    """The processes of one machine's deployment, in start order (edge last: it needs the rest).

    Each service gets only the secrets it uses: ``nats_logins[service]`` (its own NATS login,
    when ``aiapi up`` runs the NATS server), the database URL (not the edge), the operator token
    (accounts only), the upstream pool's seal: ``upstream_seal`` = (private, public), the private
    half to the edge only, the public half to accounts."""
    edge_port = _port(environ, "AIAPI_EDGE_PORT", 8080)
    # The edge runs a worker per CPU (docs/edge.md, "Workers") unless told otherwise; said here
    # so that the banner shows it.
    edge_workers = _port(environ, "AIAPI_EDGE_WORKERS", 0) or cpus or len(os.sched_getaffinity(0))
    accounts_port = _port(environ, "AIAPI_ACCOUNTS_PORT", 8081)
    admin_port = _port(environ, "AIAPI_ADMIN_PORT", 8088)
    ports = _Ports(pick_port, {edge_port, accounts_port, admin_port})
    uses_simulator = not environ.get("AIAPI_UPSTREAM_API_KEYS")
    common = {
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_DATA_DIR": str(data_dir),
        "AIAPI_INSTANCE_ID": instance_id,
    }
    logins = nats_logins or {}
    database = {"AIAPI_DATABASE_URL": database_url}
    # What each service reads beyond `common` and its NATS login; the one place a service's
    # environment is built.
    own: dict[str, dict[str, str]] = {
        "billing": {**database},
        "accounts": {
            **database,
            "AIAPI_ADMIN_TOKEN": admin_token,
            "AIAPI_ACCOUNTS_PORT": str(accounts_port),
            "AIAPI_ADMIN_PORT": str(admin_port),
            "AIAPI_COOKIE_SECURE": "false",  # plain-HTTP localhost: browsers drop Secure cookies
        },
        "payments": {**database},
        "edge": {"AIAPI_EDGE_PORT": str(edge_port), "AIAPI_EDGE_WORKERS": str(edge_workers)},
    }
    if upstream_seal is not None:
        own["edge"]["AIAPI_UPSTREAM_SEAL_PRIVATE_KEY"] = upstream_seal[0]
        own["accounts"]["AIAPI_UPSTREAM_SEAL_PUBLIC_KEY"] = upstream_seal[1]
    withheld = frozenset(_SECRETS + (_NATS_LOGIN if logins else ()))
    services: list[ServiceSpec] = []
    if uses_simulator:
        simulator_port = ports.free()
        own["edge"]["AIAPI_UPSTREAM_URL"] = f"http://127.0.0.1:{simulator_port}"
        own["edge"]["AIAPI_UPSTREAM_API_KEYS"] = SIMULATOR_UPSTREAM_KEY
        services.append(
            ServiceSpec(
                "simulator",
                "aiapi_simulator",
                simulator_port,
                args=("--port", str(simulator_port)),
                health_path="/healthz",
            )
        )
    for name in ("billing", "accounts", "payments", "edge"):
        internal = ports.free()
        env = {**common, **logins.get(name, {}), "AIAPI_INTERNAL_PORT": str(internal), **own[name]}
        services.append(
            ServiceSpec(
                name, f"aiapi_{name}", internal, env, instance_id=instance_id, withheld=withheld
            )
        )
    return StackPlan(
        tuple(services),
        uses_simulator,
        edge_port,
        accounts_port,
        admin_port,
        instance_id,
        edge_workers,
    )
