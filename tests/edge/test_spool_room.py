"""A request is served only while its usage event can be recorded: a full disk, an oversized
spool or a failing write close admission (503), and the event of a request already served is
never lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiapi_edge.spool import Spool

from .conftest import EdgeEnv
from .support import sim_post, sim_requests, stream_count, usage_events, wait_for

BODY = b'{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'


async def post(http: httpx.AsyncClient, env: EdgeEnv) -> httpx.Response:
    return await http.post(
        env.url + "/v1/messages",
        content=BODY,
        headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
    )


def assert_refused_for_the_spool(answer: httpx.Response) -> None:
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "api_error"
    assert answer.json()["request_id"] == answer.headers["request-id"]
    assert 1 <= int(answer.headers["retry-after"]) <= 60


async def test_a_failed_spool_write_closes_admission_and_the_event_is_still_published(
    env: EdgeEnv,
) -> None:
    spool = env.edge.app.service.spool
    assert spool._db is not None
    await env.bus.ensure_streams()
    async with httpx.AsyncClient(timeout=10) as http:
        # Every write of the spool now fails, as on a full disk.
        spool._db.execute("PRAGMA query_only = ON")
        served = await post(http, env)
        assert served.status_code == 200  # already answered when its event could not be written
        assert spool.unwritten == 1 and not spool.has_room

        upstream_before = len(sim_requests(env.sim_url))
        admissions_before = len(env.billing.requests)
        refused = await post(http, env)
        assert_refused_for_the_spool(refused)
        assert len(sim_requests(env.sim_url)) == upstream_before  # nothing went upstream
        assert len(env.billing.requests) == admissions_before  # nor to admission

        # The served request's event reached JetStream from memory.
        events = await usage_events(env.bus, 1)
        assert [e.request_id for e in events] == [served.headers["request-id"]]

        spool._db.execute("PRAGMA query_only = OFF")

        async def open_again() -> bool:
            return spool.has_room

        await wait_for(open_again, timeout_s=5)
        again = await post(http, env)
        assert again.status_code == 200

    async def drained() -> bool:
        return spool.depth == 0 and await stream_count(env.bus) >= 2

    await wait_for(drained, timeout_s=10)
    events = await usage_events(env.bus, 2)
    ids = sorted(e.request_id for e in events)
    assert ids == sorted([served.headers["request-id"], again.headers["request-id"]])


class TestFullDisk:
    @pytest.fixture
    def edge_settings_override(self) -> dict[str, Any]:
        return {"edge_spool_min_free_bytes": 1 << 60}  # more than any disk has free

    async def test_too_little_free_disk_refuses_before_admission_and_upstream(
        self, env: EdgeEnv
    ) -> None:
        sim_post(env.sim_url, "/_sim/reset")
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await post(http, env)
        assert_refused_for_the_spool(answer)
        assert sim_requests(env.sim_url) == []
        assert env.billing.requests == []


async def test_the_byte_bound_counts_the_spool_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=1_000_000, max_bytes=64 * 1024, sync_interval_s=0.01)
    await spool.open()
    try:
        assert spool.has_room
        payload = b"x" * 4096
        for n in range(40):  # ~160 KiB of payload: past the bound
            await spool.append(f"req_{n}", "usage.v1.request.recorded", payload)

        async def measured_full() -> bool:
            return not spool.has_room

        await wait_for(measured_full, timeout_s=5)
        assert spool.depth == 40  # every event of an admitted request was still taken
    finally:
        await spool.close()


async def test_rows_kept_in_memory_are_written_once_writes_succeed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=100, sync_interval_s=0.01)
    await spool.open()
    assert spool._db is not None
    spool._db.execute("PRAGMA query_only = ON")
    await spool.append("req_a", "usage.v1.request.recorded", b"{}")
    assert spool.unwritten == 1 and spool.depth == 0 and not spool.has_room
    spool._db.execute("PRAGMA query_only = OFF")
    for _ in range(500):
        if spool.has_room:
            break
        await asyncio.sleep(0.01)
    assert spool.has_room and spool.unwritten == 0 and spool.depth == 1
    await spool.close()
    reopened = Spool(tmp_path, max_rows=100)
    await reopened.open()
    assert reopened.depth == 1  # durable now
    await reopened.close()
