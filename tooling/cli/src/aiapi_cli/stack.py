"""What ``aiapi up`` runs, as data: the services, their ports, commands and environment.

Pure: given the operator's environment and the resolved infrastructure URLs, it says which
processes to start and with what environment. ``up.py`` does the starting.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
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
_SECRETS = ("AIAPI_DATABASE_URL", "AIAPI_ADMIN_TOKEN")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    # Variables of the operator's environment this process must not inherit (see _SECRETS).
    withheld: frozenset[str] = frozenset()

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"


@dataclass(frozen=True)
class StackPlan:
    services: tuple[ServiceSpec, ...]
    uses_simulator: bool
    edge_port: int
    accounts_port: int


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
    simulator_port: int,
    nats_logins: Mapping[str, Mapping[str, str]] | None = None,
) -> StackPlan:
    """The processes of one machine's deployment, in start order (edge last: it needs the rest).

    Each service gets only the secrets it uses: ``nats_logins[service]`` (its own NATS login,
    when ``aiapi up`` runs the NATS server), the database URL (not the edge), the operator token
    (accounts only)."""
    edge_port = _port(environ, "AIAPI_EDGE_PORT", 8080)
    accounts_port = _port(environ, "AIAPI_ACCOUNTS_PORT", 8081)
    billing_port = _port(environ, "AIAPI_BILLING_PORT", 8082)
    payments_port = _port(environ, "AIAPI_PAYMENTS_PORT", 8083)
    uses_simulator = not environ.get("AIAPI_UPSTREAM_API_KEYS")
    common = {
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_DATA_DIR": str(data_dir),
        "AIAPI_EDGE_PORT": str(edge_port),
        "AIAPI_ACCOUNTS_PORT": str(accounts_port),
        "AIAPI_BILLING_PORT": str(billing_port),
        "AIAPI_PAYMENTS_PORT": str(payments_port),
    }
    logins = nats_logins or {}

    def env_of(service: str, **extra: str) -> dict[str, str]:
        return {**common, **logins.get(service, {}), **extra}

    database = {"AIAPI_DATABASE_URL": database_url}
    edge_env = env_of("edge")
    if uses_simulator:
        edge_env["AIAPI_UPSTREAM_URL"] = f"http://127.0.0.1:{simulator_port}"
        edge_env["AIAPI_UPSTREAM_API_KEYS"] = SIMULATOR_UPSTREAM_KEY
    accounts_env = env_of(
        "accounts", **database, AIAPI_ADMIN_TOKEN=admin_token, AIAPI_COOKIE_SECURE="false"
    )
    withheld = frozenset(_SECRETS + (_NATS_LOGIN if logins else ()))
    services: list[ServiceSpec] = []
    if uses_simulator:
        services.append(
            ServiceSpec(
                "simulator", "aiapi_simulator", simulator_port, args=("--port", str(simulator_port))
            )
        )
    services += [
        ServiceSpec(
            "billing", "aiapi_billing", billing_port, env_of("billing", **database), (), withheld
        ),
        ServiceSpec("accounts", "aiapi_accounts", accounts_port, accounts_env, (), withheld),
        ServiceSpec(
            "payments",
            "aiapi_payments",
            payments_port,
            env_of("payments", **database),
            (),
            withheld,
        ),
        ServiceSpec("edge", "aiapi_edge", edge_port, edge_env, (), withheld),
    ]
    return StackPlan(tuple(services), uses_simulator, edge_port, accounts_port)
