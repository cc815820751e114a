"""Bad input never breaks the edge: every public route, fuzzed with and without a valid key.

Each answer is a 4xx in the route's own error format, a 200, or the upstream's (the simulator's)
own 4xx for a request it refuses; never a 5xx, and never a hang (each request has a timeout, and
after the run a normal request still succeeds). The examples run in a worker thread with a
blocking client, so the test's own loop stays free to answer the edge's admission requests.
Budget: AIAPI_FUZZ_SCALE (tests/edge/fuzz_bodies.py; docs/edge.md, "Fuzzing").
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiapi_shared.billing_api import REQUEST_RECORD_SUBJECT, ApiError, RequestRecordQuery
from aiapi_shared.bus import Bus
from hypothesis import given
from hypothesis import strategies as st

from .conftest import EdgeEnv
from .fuzz_bodies import (
    anthropic_bodies,
    damaged,
    fuzz_settings,
    nested_arrays,
    nested_objects,
    openai_bodies,
)

TIMEOUT_S = 30.0


@pytest.fixture
async def records(bus: Bus) -> list[RequestRecordQuery]:
    """Billing's request-record subject: every query is validated, none is found."""
    seen: list[RequestRecordQuery] = []

    async def handle(data: bytes) -> bytes:
        query = RequestRecordQuery.model_validate_json(data)
        seen.append(query)
        return (
            ApiError(error="not_found", message="no such request", status=404)
            .model_dump_json()
            .encode()
        )

    await bus.serve(REQUEST_RECORD_SUBJECT, handle, queue="billing")
    return seen


def check(answer: httpx.Response, *, openai: bool) -> None:
    """A 200, or a 4xx in the route's own error format."""
    status = answer.status_code
    assert status == 200 or 400 <= status < 500, (status, answer.text[:500])
    assert answer.headers["request-id"].startswith("req_")
    if status == 200:
        return
    body = answer.json()
    # The models routes answer in OpenAI form a client that sends no anthropic-version.
    if openai or "x-request-id" in answer.headers:
        assert answer.headers["x-request-id"] == answer.headers["request-id"]
        assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    else:
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str), body
        assert body["request_id"] == answer.headers["request-id"], body


def headers_for(env: EdgeEnv, keyed: bool, openai: bool) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if keyed:
        headers["authorization" if openai else "x-api-key"] = (
            f"Bearer {env.key}" if openai else env.key
        )
    return headers


async def still_serves(env: EdgeEnv) -> None:
    """After the run: a normal request on each route answers promptly."""
    async with httpx.AsyncClient(base_url=env.url, timeout=10) as http:
        answer = await http.post(
            "/v1/messages",
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": env.key},
        )
        assert answer.status_code == 200, answer.text
        answer = await http.post(
            "/v1/chat/completions",
            json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {env.key}"},
        )
        assert answer.status_code == 200, answer.text


def fuzz_posts(env: EdgeEnv, path: str, bodies: st.SearchStrategy[bytes], examples: int) -> None:
    openai = path.endswith("/chat/completions")
    with httpx.Client(base_url=env.url, timeout=TIMEOUT_S) as http:

        @fuzz_settings(examples)
        @given(body=bodies, keyed=st.integers(0, 9).map(lambda n: n < 8))
        def run(body: bytes, keyed: bool) -> None:
            answer = http.post(path, content=body, headers=headers_for(env, keyed, openai))
            if not keyed:
                assert answer.status_code == 401
            check(answer, openai=openai)

        run()


HOSTILE = [
    nested_arrays(300_000),
    nested_objects(300_000),
    b'{"model":"claude-haiku-4-5","max_tokens":5,"messages":' + nested_arrays(300_000) + b"}",
    b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"\\ud800"}]}',
    b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
    b'{"model":"claude-haiku-4-5","max_tokens":1e999,"messages":[]}',
    b'{"model":"claude-haiku-4-5","max_tokens":NaN,"messages":[]}',
    b'{"model":"claude-haiku-4-5","max_tokens":18446744073709551615,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"claude-haiku-4-5","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"claude-haiku-4-5","max_completion_tokens":9223372036854775807,"messages":[{"role":"user","content":"hi"}]}',
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"]
)
async def test_hostile_bodies_get_a_4xx(env: EdgeEnv, path: str) -> None:
    openai = path.endswith("/chat/completions")
    async with httpx.AsyncClient(base_url=env.url, timeout=TIMEOUT_S) as http:
        for body in HOSTILE:
            for keyed in (True, False):
                answer = await http.post(
                    path, content=body, headers=headers_for(env, keyed, openai)
                )
                check(answer, openai=openai)
    await still_serves(env)


@pytest.mark.slow
async def test_fuzzed_messages_bodies(env: EdgeEnv) -> None:
    await asyncio.to_thread(fuzz_posts, env, "/v1/messages", damaged(anthropic_bodies), 250)
    await still_serves(env)


@pytest.mark.slow
async def test_fuzzed_count_tokens_bodies(env: EdgeEnv) -> None:
    bodies = damaged(anthropic_bodies)
    await asyncio.to_thread(fuzz_posts, env, "/v1/messages/count_tokens", bodies, 100)
    await still_serves(env)


@pytest.mark.slow
async def test_fuzzed_chat_completions_bodies(env: EdgeEnv) -> None:
    await asyncio.to_thread(fuzz_posts, env, "/v1/chat/completions", damaged(openai_bodies), 250)
    await still_serves(env)


path_segments = st.text(max_size=40) | st.sampled_from(
    ["", "..", "%00", "%ff", "a/b", "claude-haiku-4-5", "req_" + "0" * 24, "x" * 5000]
)


def fuzz_gets(env: EdgeEnv, examples: int) -> None:
    with httpx.Client(base_url=env.url, timeout=TIMEOUT_S) as http:

        @fuzz_settings(examples)
        @given(
            prefix=st.sampled_from(["/v1/models/", "/v1/usage/requests/"]),
            segment=path_segments,
            encode=st.booleans(),
            keyed=st.integers(0, 9).map(lambda n: n < 8),
        )
        def run(prefix: str, segment: str, encode: bool, keyed: bool) -> None:
            path = prefix + (quote(segment, safe="") if encode else quote(segment, safe="/%"))
            answer = http.get(path, headers=headers_for(env, keyed, openai=False))
            assert answer.status_code in (200, 400, 401, 404), (path, answer.text[:300])
            check(answer, openai=False)

        run()


@pytest.mark.slow
async def test_fuzzed_model_and_usage_paths(env: EdgeEnv, records: list[Any]) -> None:
    await asyncio.to_thread(fuzz_gets, env, 150)
    assert records  # the usage route did ask billing
    assert all(q.account_id == env.account_id for q in records)
    await still_serves(env)
