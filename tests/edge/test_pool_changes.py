"""A real edge while the operator changes its pool through the ``aiapi_upstream_keys`` bucket: a
stream in flight on a key that is removed finishes on it, whole, while new requests leave it
at once; a key limited to some models serves only those; the status report and the key
test speak of the key by id and hint only."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiapi_shared.edge_api import UPSTREAM_TEST_SUBJECT, UpstreamTestQuery, UpstreamTestReply
from aiapi_shared.events.records_v1 import (
    UPSTREAM_KEYS_BUCKET,
    UPSTREAM_STATUS_BUCKET,
    UpstreamKeyRecord,
    UpstreamStatusReport,
)
from aiapi_shared.upstream_seal import generate_keypair, seal

from .conftest import EdgeEnv
from .support import UPSTREAM_KEY, sim_post, sim_requests, wait_for

PRIVATE, PUBLIC = generate_keypair()
ADDED = "sk-ant-pool-change-" + secrets.token_hex(8)


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {
        "upstream_seal_private_key": PRIVATE,
        "edge_key_affinity": False,
        "edge_upstream_report_s": 0.2,
        "edge_ping_interval_s": 0.2,
    }


async def _put(env: EdgeEnv, **fields: Any) -> None:
    record = UpstreamKeyRecord.model_validate(
        {
            "id": "uk_added",
            "source": "operator",
            "sealed_key": seal(PUBLIC, ADDED),
            "hint": "..." + ADDED[-4:],
            "weight": 1000,
            "updated_at": datetime.now(UTC),
            **fields,
        }
    )
    kv = await env.bus.ensure_kv(UPSTREAM_KEYS_BUCKET)
    await kv.put(record.id, record.model_dump_json().encode())


async def _async(value: bool) -> bool:
    return value


def _serving(env: EdgeEnv) -> set[str]:
    return {key.key_id for key in env.edge.app.service.pool.serving()}


def _body(text: str, *, model: str = "claude-haiku-4-5", stream: bool = False) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }
    )


def _keys_used(env: EdgeEnv) -> list[str]:
    return [
        value for entry in sim_requests(env.sim_url) for name, value in entry["headers"]
        if name.lower() == "x-api-key"
    ]  # fmt: skip


async def test_a_stream_on_a_removed_key_finishes_and_new_requests_leave_it(env: EdgeEnv) -> None:
    await _put(env)
    await wait_for(lambda: _async("uk_added" in _serving(env)))
    sim_post(env.sim_url, "/_sim/faults",
             {"fault": "stall", "after": 1, "seconds": 3, "api_key": ADDED})  # fmt: skip
    headers = {"x-api-key": env.key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=env.url, timeout=20) as http:

        async def stream() -> bytes:
            answer = await http.post("/v1/messages", content=_body("[[tokens: 40]]", stream=True),
                                     headers=headers)  # fmt: skip
            assert answer.status_code == 200
            return answer.content

        in_flight = asyncio.create_task(stream())
        await wait_for(lambda: _async(ADDED in _keys_used(env)))
        kv = await env.bus.ensure_kv(UPSTREAM_KEYS_BUCKET)
        await kv.delete("uk_added")
        await wait_for(lambda: _async("uk_added" not in _serving(env)))
        for _ in range(3):
            answer = await http.post("/v1/messages", content=_body("hi"), headers=headers)
            assert answer.status_code == 200
        assert _keys_used(env)[-3:] == [UPSTREAM_KEY] * 3
        assert not in_flight.done()  # still stalled on the removed key
        finished = await in_flight
    assert b"event: message_stop" in finished and b'"output_tokens":40' in finished


async def test_a_key_with_a_model_list_serves_only_those_models(env: EdgeEnv) -> None:
    await _put(env, models=["claude-sonnet-4-6"])
    await wait_for(lambda: _async("uk_added" in _serving(env)))
    headers = {"x-api-key": env.key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=env.url, timeout=20) as http:
        sim_post(env.sim_url, "/_sim/reset")
        for _ in range(3):
            answer = await http.post("/v1/messages", content=_body("hi"), headers=headers)
            assert answer.status_code == 200
        assert _keys_used(env) == [UPSTREAM_KEY] * 3  # haiku: not this key's
        sim_post(env.sim_url, "/_sim/reset")
        sonnet = _body("hi", model="claude-sonnet-4-6")
        for _ in range(3):
            assert (await http.post("/v1/messages", content=sonnet, headers=headers)).is_success
        assert _keys_used(env) == [ADDED] * 3  # its weight takes every turn


async def test_the_report_and_the_test_name_the_key_by_id_and_hint_only(env: EdgeEnv) -> None:
    await _put(env, enabled=False)
    await wait_for(lambda: _async(env.edge.app.service.upstream_keys.find("uk_added") is not None))
    assert "uk_added" not in _serving(env)
    reply = await env.bus.call(
        UPSTREAM_TEST_SUBJECT, UpstreamTestQuery(key_id="uk_added"), UpstreamTestReply,
        timeout_s=10,
    )  # fmt: skip
    assert (reply.found, reply.ok, reply.status, reply.outcome) == (True, True, 200, "ok")
    assert _keys_used(env)[-1] == ADDED  # through that key, although disabled
    sim_post(env.sim_url, "/_sim/faults", {"fault": "401", "api_key": ADDED})
    refused = await env.bus.call(
        UPSTREAM_TEST_SUBJECT, UpstreamTestQuery(key_id="uk_added"), UpstreamTestReply,
        timeout_s=10,
    )  # fmt: skip
    assert (refused.ok, refused.status, refused.outcome) == (False, 401, "key_rejected")
    assert refused.error_type == "authentication_error"
    unknown = await env.bus.call(
        UPSTREAM_TEST_SUBJECT, UpstreamTestQuery(key_id="uk_none"), UpstreamTestReply,
        timeout_s=10,
    )  # fmt: skip
    assert (unknown.found, unknown.outcome) == (False, "not_found")

    status = await env.bus.ensure_kv(UPSTREAM_STATUS_BUCKET)
    edge_id = env.edge.app.service.edge_id
    report = UpstreamStatusReport.model_validate_json((await status.get(edge_id)).value or b"")
    # The disabled key takes no traffic, so only the setting's key is reported (accounts lists
    # the disabled one from its table); by id and hint.
    assert [(k.hint, k.source, k.health) for k in report.keys] == [
        ("..." + UPSTREAM_KEY[-4:], "env", "healthy")
    ]
    assert report.keys[0].id.startswith("env-") and report.keys[0].requests == 0
    raw = (await status.get(edge_id)).value or b""
    assert ADDED.encode() not in raw and UPSTREAM_KEY.encode() not in raw
    for text in (reply.model_dump_json(), refused.model_dump_json()):
        assert ADDED not in text
