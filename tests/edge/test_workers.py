"""An edge of several worker processes (``python -m aiapi_edge`` with ``AIAPI_EDGE_WORKERS``): one
port served by every worker, a worker killed with SIGKILL started again and its spool published,
the spools of workers that no longer exist (fewer workers, or the single-process layout) published
exactly once, and the supervisor's internal listener answering for the whole edge."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import ServiceProcess, internal_env

from .support import (
    UPSTREAM_KEY,
    key_record,
    make_key,
    put_balance,
    put_key,
    stream_count,
    usage_events,
    wait_for,
)

pytestmark = pytest.mark.slow

BODY = orjson.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
)
ACCOUNT = "acct_workers"


def edge_env(
    nats_url: str, sim_url: str, spool: Path, workers: int, edge_id: str | None = "edge-t"
) -> dict[str, str]:
    return internal_env(
        {
            **({"AIAPI_EDGE_ID": edge_id} if edge_id else {}),
            "AIAPI_NATS_URL": nats_url,
            "AIAPI_UPSTREAM_URL": sim_url,
            "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
            "AIAPI_EDGE_PORT": str(free_port()),
            "AIAPI_EDGE_SPOOL_DIR": str(spool),
            "AIAPI_EDGE_WORKERS": str(workers),
            "AIAPI_EDGE_ADMISSION_TIMEOUT_S": "0.2",
        }
    )[0]


def start(spawn: SpawnFn, env: dict[str, str]) -> ServiceProcess:
    ready = f"http://127.0.0.1:{env['AIAPI_INTERNAL_PORT']}/readyz"
    return spawn([sys.executable, "-m", "aiapi_edge"], env=env, health_url=ready, name="edge")


def workers_of(edge: ServiceProcess) -> list[int]:
    assert edge.pid is not None
    children = Path(f"/proc/{edge.pid}/task/{edge.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def spooled(directory: Path) -> int:
    """Events a worker's spool holds (read beside the worker: SQLite in WAL mode allows it)."""
    path = directory / "usage.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


async def post_fresh(url: str, key: str) -> httpx.Response:
    """One request on a connection of its own, so the kernel hands it to any worker."""
    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        return await http.post(
            url + "/v1/messages",
            content=BODY,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )


async def send(url: str, key: str, count: int) -> list[str]:
    answers = await asyncio.gather(*(post_fresh(url, key) for _ in range(count)))
    assert [a.status_code for a in answers] == [200] * count, [a.text for a in answers]
    return [a.headers["request-id"] for a in answers]


async def prepared(bus: Any) -> str:
    key = make_key()
    await put_key(bus, key, key_record(ACCOUNT))
    await put_balance(bus, ACCOUNT, 50)  # the offline allowance needs a snapshot
    await bus.ensure_streams()
    return key


async def until_every_worker_spooled(url: str, key: str, dirs: list[Path]) -> list[str]:
    """Requests (NATS away: each spooled by the worker that served it) until every worker's
    spool holds some."""
    ids: list[str] = []
    for _ in range(40):
        ids += await send(url, key, 8)
        if all(spooled(d) for d in dirs):
            return ids
    raise AssertionError("the kernel never handed a connection to every worker")


async def test_a_worker_killed_with_spooled_usage_is_started_again_and_publishes_it_once(
    bus: Any, nats_server: EmbeddedNats, sim_url: str, spawn: SpawnFn, tmp_path: Path
) -> None:
    key = await prepared(bus)
    spool = tmp_path / "spool"
    env = edge_env(nats_server.url, sim_url, spool, workers=2)
    edge = start(spawn, env)
    url = f"http://127.0.0.1:{env['AIAPI_EDGE_PORT']}"
    first = workers_of(edge)
    assert len(first) == 2
    # With NATS up, both workers serve and publish: their events carry their own edge ids.
    ids = await send(url, key, 40)
    events = await usage_events(bus, 40)
    assert sorted(e.request_id for e in events) == sorted(ids)
    # Which worker accepts each connection is the kernel's choice (both are shown serving below).
    assert {e.edge_id for e in events} <= {"edge-t-w0", "edge-t-w1"}
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(edge.probe_url("/metrics"))).text
    assert "aiapi_edge_workers 2.0" in metrics
    assert "aiapi_edge_usage_published_total 40.0" in metrics  # summed over the workers
    assert 'aiapi_edge_spool_depth{worker="1"}' in metrics

    nats_server.stop()
    dirs = [spool / "worker-0", spool / "worker-1"]
    ids += await until_every_worker_spooled(url, key, dirs)
    victim = first[1]
    os.kill(victim, signal.SIGKILL)
    await wait_for(
        lambda_async(lambda: len(workers_of(edge)) == 2 and victim not in workers_of(edge))
    )
    # The other worker serves meanwhile; the new one serves too once NATS is back.
    nats_server.start()
    async with httpx.AsyncClient(timeout=10) as http:

        async def ready() -> bool:
            return (await http.get(edge.probe_url("/readyz"))).status_code == 200

        await wait_for(ready, timeout_s=30)
        metrics = (await http.get(edge.probe_url("/metrics"))).text
    assert "aiapi_edge_worker_restarts_total 1.0" in metrics
    events = await usage_events(bus, len(ids), timeout_s=30)
    assert sorted(e.request_id for e in events) == sorted(ids)  # every one, once
    await wait_for(lambda_async(lambda: not any(spooled(d) for d in dirs)), timeout_s=10)
    running = workers_of(edge)
    assert edge.stop() == 0  # SIGTERM reaches every worker; each drains and exits
    assert not any(alive(pid) for pid in running)


async def test_spools_of_workers_that_no_longer_exist_are_published_once(
    bus: Any, nats_server: EmbeddedNats, sim_url: str, spawn: SpawnFn, tmp_path: Path
) -> None:
    key = await prepared(bus)
    spool = tmp_path / "spool"
    # No AIAPI_EDGE_ID: the supervisor draws one for the edge, and every worker is named from it.
    env = edge_env(nats_server.url, sim_url, spool, workers=3, edge_id=None)
    edge = start(spawn, env)
    url = f"http://127.0.0.1:{env['AIAPI_EDGE_PORT']}"
    nats_server.stop()
    dirs = [spool / f"worker-{i}" for i in range(3)]
    ids = await until_every_worker_spooled(url, key, dirs)
    assert edge.stop() == 0  # NATS away: the spools stay on disk
    held = [spooled(d) for d in dirs]
    assert sum(held) == len(ids)
    # The single-process layout of earlier versions kept its spool at the top: worker 0's
    # files moved there stand for one.
    for name in ("usage.sqlite3", "usage.sqlite3-wal", "usage.sqlite3-shm"):
        if (dirs[0] / name).exists():
            shutil.move(dirs[0] / name, spool / name)
    nats_server.start()
    one = start(spawn, edge_env(nats_server.url, sim_url, spool, workers=1, edge_id=None))
    events = await usage_events(bus, len(ids), timeout_s=30)
    assert sorted(e.request_id for e in events) == sorted(ids)  # every one, once
    named = {tuple(e.edge_id.rsplit("-w", 1)) for e in events}
    assert {edge for edge, _ in named} == {next(iter(named))[0]}  # one edge
    assert {worker for _, worker in named} == {"0", "1", "2"}

    def adopted() -> bool:
        return (
            not dirs[1].exists() and not dirs[2].exists() and not (spool / "usage.sqlite3").exists()
        )

    await wait_for(lambda_async(adopted), timeout_s=10)
    assert one.stop() == 0
    assert await stream_count(bus) == len(ids)


def lambda_async(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run
