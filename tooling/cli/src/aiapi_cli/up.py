"""``aiapi up``: the whole system on one machine, in the foreground, until Ctrl-C.

Embedded NATS and PostgreSQL unless ``AIAPI_NATS_URL`` / ``AIAPI_DATABASE_URL`` name running ones;
the upstream simulator unless ``AIAPI_UPSTREAM_API_KEYS`` is set; then billing, accounts, payments
and the edge, each a child process watched and restarted if it dies. It waits until every service
is healthy, makes a demo account with a small balance and a key (kept in the data directory so
the next start prints the same one), prints what an operator needs, and on Ctrl-C stops every
process it started, in reverse order.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import httpx
import platformdirs
import psycopg
from aiapi_shared.nats_permissions import SERVICES
from aiapi_shared.upstream_seal import public_of
from psycopg import sql

from aiapi_cli.credentials import LocalCredentials, NatsUsers, read_or_create_secret
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_cli.ports import free_port, port_free
from aiapi_cli.stack import ServiceSpec, StackPlan, plan_stack
from aiapi_cli.supervisor import Supervisor

DEMO_BALANCE_USD = "5.00"
DATABASE_NAME = "aiapi"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("AIAPI_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_data_dir("aiapi"))


def _ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def refuse_taken_ports(plan: StackPlan) -> None:
    """The fixed ports must be free: a second ``aiapi up`` on the machine needs its own."""
    for setting, port in plan.fixed_ports.items():
        if not port_free("127.0.0.1", port):
            raise RuntimeError(
                f"port {port} is in use (another aiapi up?); choose another with {setting}"
            )


class Stack:
    """Everything ``aiapi up`` started, so that stopping it is one call."""

    def __init__(self, environ: Mapping[str, str], data_dir: Path) -> None:
        self.environ = dict(environ)
        self.data_dir = data_dir
        self.nats: EmbeddedNats | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.supervisor: Supervisor | None = None
        self.plan: StackPlan | None = None
        self.admin_token = ""

    def start(self) -> StackPlan:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        credentials = LocalCredentials.kept_in(self.data_dir)
        nats_url = self.environ.get("AIAPI_NATS_URL")
        logins: dict[str, dict[str, str]] = {}
        if not nats_url:  # ours: each service logs in with its own user (nats_permissions)
            nats_url = self._start_nats(credentials.nats)
            logins = {service: credentials.nats.env(service) for service in SERVICES}
        database_url = self.environ.get("AIAPI_DATABASE_URL") or self._start_postgres(
            credentials.postgres_password
        )
        # Kept where earlier versions kept it, so an existing data directory keeps its token.
        self.admin_token = self.environ.get("AIAPI_ADMIN_TOKEN") or read_or_create_secret(
            self.data_dir / "admin_token", lambda: "aiapi-admin-" + secrets.token_urlsafe(24)
        )
        self.plan = plan_stack(
            self.environ,
            nats_url=nats_url,
            database_url=database_url,
            data_dir=self.data_dir,
            admin_token=self.admin_token,
            instance_id="up-" + secrets.token_hex(6),
            pick_port=free_port,
            nats_logins=logins,
            upstream_seal=self._upstream_seal(credentials),
        )
        refuse_taken_ports(self.plan)
        self.supervisor = Supervisor(self.plan.services, log_dir=self.data_dir / "logs")
        self.supervisor.start_all()
        return self.plan

    def _upstream_seal(self, credentials: LocalCredentials) -> tuple[str, str]:
        """The operator's own pair when the environment gives one, else the data directory's."""
        private = self.environ.get("AIAPI_UPSTREAM_SEAL_PRIVATE_KEY")
        if private:
            return private, self.environ.get("AIAPI_UPSTREAM_SEAL_PUBLIC_KEY") or public_of(private)
        return credentials.upstream_seal_private, credentials.upstream_seal_public

    def _start_nats(self, users: NatsUsers) -> str:
        self.nats = EmbeddedNats(self.data_dir / "nats", authorization=users.server_config())
        self.nats.start()
        print(f"aiapi: started embedded NATS at {self.nats.url} (pid {self.nats.pid})", flush=True)
        return self.nats.url

    def _start_postgres(self, password: str) -> str:
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres", password=password)
        self.postgres.start()
        print(f"aiapi: started embedded PostgreSQL (pid {self.postgres.pid})", flush=True)
        return _ensure_database(self.postgres.url, DATABASE_NAME)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()


def ensure_demo(admin_url: str, admin_token: str, data_dir: Path) -> dict[str, str]:
    """A demo account with a small balance and a key, created once and remembered."""
    memo = data_dir / "demo.json"
    if memo.exists():
        remembered: dict[str, str] = json.loads(memo.read_text("utf-8"))
        return remembered
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=admin_url, headers=headers, timeout=15) as client:
        account = client.post(
            "/admin/v1/accounts", json={"email": "demo@aiapi.localhost", "plan": "basic"}
        )
        account.raise_for_status()
        account_id = account.json()["id"]
        credit = client.post(
            f"/admin/v1/accounts/{account_id}/adjustments",
            json={"amount_usd": DEMO_BALANCE_USD, "reason": "aiapi up demo balance"},
            headers={"Idempotency-Key": f"aiapi-up-demo-{account_id}"},
        )
        credit.raise_for_status()
        key = client.post(f"/admin/v1/accounts/{account_id}/keys", json={"name": "demo"})
        key.raise_for_status()
    demo = {"account_id": account_id, "key": key.json()["key"], "balance_usd": DEMO_BALANCE_USD}
    fd = os.open(memo, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(demo, handle)
    return demo


def _banner(plan: StackPlan, stack: Stack, demo: dict[str, str] | None) -> str:
    edge = f"http://127.0.0.1:{plan.edge_port}"
    operator = f"http://127.0.0.1:{plan.admin_port}"
    lines = [
        "",
        "aiapi is up.",
        f"  Anthropic SDKs, Claude Code  base URL: {edge}/api/proxy",
        f"  OpenAI SDKs and tools        base URL: {edge}/api/proxy/v1",
        f"  Operator API                 {operator}/admin/v1   (docs: {operator}/docs)",
        f"  Operator console             {operator}/admin/"
        "   (aiapi admin operators create ... --password-stdin)",
        f"  Customer API                 http://127.0.0.1:{plan.accounts_port}/api/v1",
        f"  Operator token               {stack.admin_token}"
        f"   (aiapi admin: AIAPI_ADMIN_URL={operator})",
        f"  Data directory               {stack.data_dir}",
        f"  Edge workers                 {plan.edge_workers}   (AIAPI_EDGE_WORKERS; default one per CPU)",
    ]
    if demo:
        label = f"Demo key ({demo['balance_usd']} USD)"
        lines.append(f"  {label:<29}{demo['key']}")
    if plan.uses_simulator:
        simulator = next(s for s in plan.services if s.name == "simulator")
        lines.append(f"  Upstream simulator           http://127.0.0.1:{simulator.port}")
        lines.append(
            "  Upstream: the BUILT-IN SIMULATOR (AIAPI_UPSTREAM_API_KEYS is unset): answers are"
            " simulated, not Claude's."
        )
    lines += [
        "",
        f"  Try it:  curl {edge}/v1/messages -H 'x-api-key: <demo key>' "
        "-H 'content-type: application/json' "
        """-d '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hello"}]}'""",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def run_up(environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    data_dir = default_data_dir(env)
    stack = Stack(env, data_dir)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"aiapi: data directory {data_dir}", flush=True)
    try:
        plan = stack.start()
        if plan.uses_simulator:
            print("aiapi: no upstream keys set: serving from the built-in simulator", flush=True)
        assert stack.supervisor is not None
        stack.supervisor.wait_healthy(timeout_s=120, stopping=stopping)
        demo = None
        if not stopping.is_set():
            admin_url = f"http://127.0.0.1:{plan.admin_port}"
            demo = ensure_demo(admin_url, stack.admin_token, data_dir)
        print(_banner(plan, stack, demo), flush=True)
        while not stopping.wait(1.0):
            stack.supervisor.restart_dead()
        return 0
    except Exception as exc:  # noqa: BLE001 (report any start-up failure plainly, then clean up)
        print(f"aiapi: failed to start: {exc}", file=sys.stderr, flush=True)
        print(f"aiapi: logs are in {data_dir / 'logs'}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("aiapi: stopping", flush=True)
        stack.stop()
        print("aiapi: stopped", flush=True)


__all__ = ["ServiceSpec", "run_up"]
