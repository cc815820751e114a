"""Billing as a process: killed between commit and ack, and PostgreSQL gone for a while."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import psycopg
from aiapi_billing.service import SCHEMA
from aiapi_cli.embedded import EmbeddedNats, EmbeddedPostgres
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus
from aiapi_shared.events import RequestPriced
from aiapi_testkit.plugin import SpawnFn

from tests.billing.conftest import billing_env, eventually, usage_event

BILLING = [sys.executable, "-m", "aiapi_billing"]


async def _scalar(url: str, query: str) -> Any:
    async with await psycopg.AsyncConnection.connect(
        url, options=f"-c search_path={SCHEMA},public"
    ) as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
        return None if row is None else row[0]


def _audit(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLING, "audit"],
        env={"AIAPI_DATABASE_URL": url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _consumer_drained(bus: Bus) -> bool:
    info = await bus.js.consumer_info("USAGE", "billing-settlement")
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


async def _outbox_empty(url: str) -> bool:
    return bool(await _scalar(url, "SELECT count(*) = 0 FROM outbox"))


async def _priced(bus: Bus) -> list[str]:
    """The request ids of the RequestPriced events the BILLING stream holds."""
    info = await bus.js.stream_info("BILLING")
    found: list[str] = []
    if not info.state.messages:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg("BILLING", seq)
        if msg.subject == RequestPriced.subject:
            found.append(RequestPriced.model_validate_json(msg.data or b"").request_id)
    return found


async def test_killed_after_commit_before_ack_bills_once_after_restart(
    spawn: SpawnFn, migrated: str, nats_url: str, bus: Bus
) -> None:
    port = free_port("127.0.0.1")
    health = f"http://127.0.0.1:{port}/readyz"
    env = billing_env(migrated, nats_url, port, AIAPI_CONSUMER_ACK_WAIT_S="2")
    crashing = spawn(
        BILLING, env={**env, "AIAPI_BILLING_CRASH_AFTER_COMMITS": "1"}, health_url=health,
        name="billing-crash",
    )  # fmt: skip
    event = usage_event("acc_k", output_tokens=1000)
    await bus.publish_event(event)
    await eventually(lambda: not crashing.running, timeout_s=20)
    assert await _scalar(migrated, "SELECT count(*) FROM usage_records") == 1
    info = await bus.js.consumer_info("USAGE", "billing-settlement")
    assert info.num_ack_pending == 1  # committed, never acked

    # Killed between the commit and the publish too: its events are in the outbox only.
    assert await _scalar(migrated, "SELECT count(*) FROM outbox") >= 2
    assert await _priced(bus) == []

    spawn(BILLING, env=env, health_url=health, name="billing-restarted")
    await eventually(lambda: _consumer_drained(bus), timeout_s=30)
    assert await _scalar(migrated, "SELECT count(*) FROM transfers WHERE kind = 'usage'") == 1
    # The restarted relay publishes them (once: the redelivered event was a duplicate).
    await eventually(lambda: _outbox_empty(migrated), timeout_s=30)
    assert await _priced(bus) == [event.request_id]
    assert await _scalar(migrated, "SELECT debits FROM accounts") == 4_500_000 + 900_000
    result = _audit(migrated)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_postgres_outage_under_load_pauses_settlement_and_bills_every_event_once(
    spawn: SpawnFn, restartable_postgres: EmbeddedPostgres, nats_url: str, bus: Bus
) -> None:
    url = restartable_postgres.url
    port = free_port("127.0.0.1")
    env = billing_env(url, nats_url, port, AIAPI_CONSUMER_ACK_WAIT_S="5")
    spawn(BILLING, env=env, health_url=f"http://127.0.0.1:{port}/readyz", name="billing-pg")
    events = [usage_event(f"acc_{i % 7}", output_tokens=100 + i) for i in range(300)]

    async def publish_all() -> None:
        for i, event in enumerate(events):
            await bus.publish_event(event)
            if i % 20 == 0:
                await asyncio.sleep(0.05)

    publisher = asyncio.create_task(publish_all())
    await asyncio.sleep(0.3)
    restartable_postgres.stop()
    await asyncio.sleep(10)  # an outage while events keep arriving
    restartable_postgres.start()
    await publisher

    async def all_billed() -> bool:
        try:
            return bool(await _scalar(url, "SELECT count(*) FROM usage_records") == len(events))
        except psycopg.OperationalError:
            return False

    await eventually(all_billed, timeout_s=90)
    await eventually(lambda: _consumer_drained(bus), timeout_s=30)
    assert await _scalar(url, "SELECT count(*) FROM transfers WHERE kind = 'usage'") == len(events)
    stream = await bus.js.stream_info("USAGE")
    assert stream.state.messages == len(events)  # nothing was terminated or lost on the way
    result = _audit(url)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_database_it_refuses_to_start_with_exit_2(nats_url: str) -> None:
    env = billing_env("", nats_url, free_port("127.0.0.1"))
    del env["AIAPI_DATABASE_URL"]
    done = subprocess.run(BILLING, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "AIAPI_DATABASE_URL is required" in done.stderr


async def test_its_only_listener_is_internal_and_sigterm_exits_0(
    spawn: SpawnFn, migrated: str, nats_url: str, bus: Bus
) -> None:
    port = free_port("127.0.0.1")
    env = billing_env(migrated, nats_url, port, AIAPI_INSTANCE_ID="billing-1")
    proc = spawn(BILLING, env=env, health_url=f"http://127.0.0.1:{port}/readyz", name="billing")
    await bus.publish_event(usage_event("acc_m", output_tokens=10))
    async with httpx.AsyncClient(timeout=10) as http:
        live = (await http.get(proc.probe_url("/livez"))).json()
        assert live == {"status": "live", "service": "billing", "instance": "billing-1"}

        async def settled() -> bool:
            metrics = await http.get(proc.probe_url("/metrics"))
            return "aiapi_billing_commits_total 1" in metrics.text

        await eventually(settled)
    assert proc.listening_ports() == {port}  # no public port
    assert proc.stop() == 0


async def test_liveness_holds_and_readiness_drops_while_nats_is_down(
    spawn: SpawnFn, migrated: str, nats_server: EmbeddedNats
) -> None:
    port = free_port("127.0.0.1")
    env = billing_env(migrated, nats_server.url, port)
    proc = spawn(BILLING, env=env, health_url=f"http://127.0.0.1:{port}/readyz", name="billing")
    async with httpx.AsyncClient(timeout=10) as http:

        async def readiness(status: int) -> bool:
            return (await http.get(proc.probe_url("/readyz"))).status_code == status

        nats_server.stop()
        await eventually(lambda: readiness(503))  # its API is NATS: it cannot serve
        assert (await http.get(proc.probe_url("/livez"))).status_code == 200  # not restarted
        nats_server.start()
        await eventually(lambda: readiness(200), timeout_s=30)
    assert proc.stop() == 0
