"""Usage that is never lost: NATS going away during traffic, the edge killed with a spooled event,
and no key in any log line of a full run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import internal_env

from .conftest import EdgeEnv
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

BODY = orjson.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
)


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_admission_timeout_s": 0.2}


async def post(http: httpx.AsyncClient, url: str, key: str, body: bytes = BODY) -> httpx.Response:
    return await http.post(
        url + "/v1/messages",
        content=body,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )


@pytest.mark.slow
async def test_nats_stopped_during_200_requests_gives_exactly_200_events(
    env: EdgeEnv, nats_server: EmbeddedNats
) -> None:
    statuses: list[int] = []
    ids: list[str] = []
    await put_balance(env.bus, env.account_id, 10)  # the offline allowance needs a snapshot

    async def mirrored() -> bool:
        return env.edge.app.service.balances.get(env.account_id) is not None

    await wait_for(mirrored)
    async with httpx.AsyncClient(timeout=30) as http:

        async def batch(count: int) -> None:
            answers = await asyncio.gather(*(post(http, env.url, env.key) for _ in range(count)))
            statuses.extend(a.status_code for a in answers)
            ids.extend(a.headers["request-id"] for a in answers)

        for _ in range(5):
            await batch(10)
        nats_server.stop()
        for _ in range(10):
            await batch(10)  # served on the offline allowance, spooled
        nats_server.start()
        for _ in range(5):
            await batch(10)
    assert statuses == [200] * 200
    events = await usage_events(env.bus, 200, timeout_s=30)
    assert len(events) == 200
    assert sorted(e.request_id for e in events) == sorted(ids)
    assert {e.admission for e in events} == {"billing", "allowance"}

    async def spool_empty() -> bool:
        return env.edge.app.service.spool.depth == 0

    await wait_for(spool_empty, timeout_s=5)


def edge_env(nats_url: str, sim_url: str, spool: Path, port: int) -> dict[str, str]:
    return internal_env(
        {
            "AIAPI_NATS_URL": nats_url,
            "AIAPI_UPSTREAM_URL": sim_url,
            "AIAPI_UPSTREAM_API_KEYS": UPSTREAM_KEY,
            "AIAPI_EDGE_PORT": str(port),
            "AIAPI_EDGE_SPOOL_DIR": str(spool),
            "AIAPI_EDGE_ADMISSION_TIMEOUT_S": "0.2",
            "AIAPI_LOG_LEVEL": "DEBUG",
        }
    )[0]


def ready_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['AIAPI_INTERNAL_PORT']}/readyz"


@pytest.mark.slow
async def test_a_killed_edge_publishes_its_spooled_event_once_after_restart(
    bus: Any, nats_server: EmbeddedNats, sim_url: str, spawn: SpawnFn, tmp_path: Path
) -> None:
    key = make_key()
    await put_key(bus, key, key_record("acct_kill"))
    await put_balance(bus, "acct_kill", 10)  # the offline allowance needs a snapshot
    await bus.ensure_streams()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "aiapi_edge"]
    environment = edge_env(nats_server.url, sim_url, tmp_path / "spool", port)
    edge = spawn(argv, env=environment, health_url=ready_url(environment), name="edge")
    async with httpx.AsyncClient(timeout=10) as http:
        nats_server.stop()
        answer = await post(http, url, key)  # admitted on the allowance; spooled, not published
        for _ in range(50):  # until the balance mirror has loaded (a 503 records nothing)
            if answer.status_code != 503:
                break
            await asyncio.sleep(0.1)
            answer = await post(http, url, key)
        assert answer.status_code == 200
        request_id = answer.headers["request-id"]
        edge.kill()
        nats_server.start()
        assert await stream_count(bus) == 0
        edge.start()
        events = await usage_events(bus, 1)
        assert [e.request_id for e in events] == [request_id]
        assert events[0].admission == "allowance"
        # Published once: a second restart finds nothing left to send.
        edge.stop()
        edge.start()
        assert (await post(http, url, key)).status_code == 200
        await usage_events(bus, 2)
        assert await stream_count(bus) == 2
    assert "sk-cc-" not in edge.log_text()


@pytest.mark.slow
async def test_no_log_line_of_a_full_run_holds_a_key(
    bus: Any, nats_server: EmbeddedNats, sim_url: str, spawn: SpawnFn, tmp_path: Path
) -> None:
    key, revoked = make_key(), make_key()
    await put_key(bus, key, key_record("acct_logs"))
    await put_balance(bus, "acct_logs", 10)  # the offline allowance needs a snapshot
    await put_key(bus, revoked, key_record("acct_logs", key_id="key_2", key_status="revoked"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = edge_env(nats_server.url, sim_url, tmp_path / "spool", port)
    edge = spawn(
        [sys.executable, "-m", "aiapi_edge"],
        env=environment,
        health_url=ready_url(environment),
        name="edge",
    )
    stream = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "x [[fail: 500]]"}],
        }
    )
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await post(http, url, key)).status_code == 200
        assert (await post(http, url, key, stream)).status_code == 502  # a failing upstream
        assert (await post(http, url, revoked)).status_code == 401
        assert (await post(http, url, key + "x")).status_code == 401
        assert (await post(http, url, "sk-cc-" + "!" * 10)).status_code == 401
        assert (await post(http, url, key, b"{bad")).status_code == 400
        nats_server.stop()  # billing away: offline admission and a failing relay get logged
        assert (await post(http, url, key)).status_code == 200
        nats_server.start()
        await wait_for(lambda: _count_at_least(bus, 3), timeout_s=15)
        metrics = (await http.get(edge.probe_url("/metrics"))).text
    assert "aiapi_edge_spool_depth" in metrics
    edge.stop()
    logs = edge.log_text()
    assert "upstream attempt failed" in logs  # the run did log, and...
    assert "sk-cc-" not in logs  # ...no customer key,
    assert UPSTREAM_KEY not in logs  # ...nor the upstream key.


async def _count_at_least(bus: Any, n: int) -> bool:
    try:
        return await stream_count(bus) >= n
    except Exception:
        return False
