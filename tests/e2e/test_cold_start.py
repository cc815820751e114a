"""An edge restarted while NATS is down serves on the mirrors it kept on disk, and what it served
is billed exactly once when NATS is back (docs/edge.md, "Cold start")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_edge.mirror_snapshot import decode
from aiapi_edge.mirrors import key_digest
from aiapi_shared.events.records_v1 import BALANCES_BUCKET, KEYS_BUCKET
from aiapi_shared.money import parse_usd
from aiapi_testkit.plugin import SpawnFn

from .conftest import deploy
from .support import Deployment, eventually, open_account
from .support import balance as account_balance

pytestmark = pytest.mark.slow


def _mirrored(spool: Path, key: str, account_id: str) -> bool:
    """Every worker's snapshot on disk (``worker-i/mirrors.json``, however many workers the edge
    runs) holds the key's record and the account's balance."""
    workers = list(spool.glob("worker-*"))
    try:
        snapshots = [decode((worker / "mirrors.json").read_bytes()) for worker in workers]
    except (FileNotFoundError, ValueError):
        return False
    return bool(workers) and all(
        key_digest(key) in buckets.get(KEYS_BUCKET, {})
        and account_id in buckets.get(BALANCES_BUCKET, {})
        for buckets in snapshots
    )


def _ask(deployment: Deployment, key: str, text: str) -> tuple[str, int]:
    """One request through the edge: its id and the cost it quoted."""
    with deployment.sdk(key) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=30,
            messages=[{"role": "user", "content": text}],
        )
    return raw.headers["request-id"], parse_usd(raw.headers["aiapi-cost-usd"])


def _settled_cost(deployment: Deployment, key: str, request_id: str) -> int | None:
    record = httpx.get(
        f"{deployment.edge_url}/v1/usage/requests/{request_id}",
        headers={"x-api-key": key},
        timeout=10,
    )
    return parse_usd(record.json()["cost_usd"]) if record.status_code == 200 else None


def test_a_request_served_by_an_edge_started_without_nats_is_billed_once(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
) -> None:
    fast_saves = {"AIAPI_EDGE_MIRROR_SAVE_INTERVAL_S": "0.2"}
    with (
        deploy(
            database_url, strict_nats_server, nats_login, spawn, tmp_path, extra_env=fast_saves
        ) as deployment,
        deployment.admin() as admin,
    ):
        account_id, _, key = open_account(admin, "5.00")
        start = account_balance(admin, account_id)
        spool = tmp_path / "data" / "edge-spool"
        eventually(lambda: _mirrored(spool, key, account_id))
        for mirrors in spool.glob("worker-*/mirrors.json"):
            assert key not in mirrors.read_text()  # digests only, never a customer's key

        edge = next(p for p in deployment.processes if p.log_path.stem == "edge")
        edge.kill()
        strict_nats_server.stop()
        edge.start(timeout_s=60)  # ready on its restored mirrors, NATS still down
        request_id, quoted = _ask(deployment, key, "[[reply: served while NATS was away]]")
        assert quoted > 0

        strict_nats_server.start()
        cost = eventually(lambda: _settled_cost(deployment, key, request_id), timeout_s=60)
        assert cost == quoted
        eventually(lambda: account_balance(admin, account_id) == start - cost, timeout_s=30)

        # Once: a restart publishes nothing again, and the next request is billed after it alone.
        edge.stop()
        edge.start(timeout_s=60)
        later_id, later_cost = _ask(deployment, key, "[[reply: after the restart]]")
        assert eventually(lambda: _settled_cost(deployment, key, later_id), timeout_s=30)
        eventually(lambda: account_balance(admin, account_id) == start - cost - later_cost)
        audit = deployment.audit()
        assert audit.returncode == 0, audit.stdout + audit.stderr
