"""The Anthropic passthrough route through the official SDK: same answers as the upstream gives,
bodies reaching the upstream byte for byte, headers that identify the upstream left behind."""

from __future__ import annotations

import base64
import hashlib
import sys
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .support import UPSTREAM_KEY, sim_requests

# The simulator checks thinking signatures: base64(sha256(thinking text)).
SIGNATURE = base64.b64encode(hashlib.sha256(b"Use calc / now\n").digest())


def client(env: EdgeEnv) -> anthropic.AsyncAnthropic:
    return env.anthropic()


async def test_streamed_and_plain_answers_give_the_same_final_message(env: EdgeEnv) -> None:
    sdk = client(env)
    prompt = [{"role": "user", "content": "What is the answer? [[reply: 42, of course.]]"}]
    plain = await sdk.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=prompt)
    async with sdk.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=prompt
    ) as stream:
        streamed = await stream.get_final_message()
    assert plain.content[0].type == "text" and plain.content[0].text == "42, of course."
    assert streamed.model_dump(exclude={"id"}) == plain.model_dump(exclude={"id"})


async def test_tool_use_and_thinking_streams_accumulate(env: EdgeEnv) -> None:
    sdk = client(env)
    text = 'Weather? [[thinking: I should call both.]] [[tool: weather {"city": "Paris"}]] [[tool: time {"tz": "CET"}]]'
    async with sdk.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        tools=[
            {"name": "weather", "input_schema": {"type": "object"}},
            {"name": "time", "input_schema": {"type": "object"}},
        ],
        messages=[{"role": "user", "content": text}],
    ) as stream:
        final = await stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "tool_use", "tool_use"]
    assert final.content[0].thinking == "I should call both."  # type: ignore[union-attr]
    assert [b.input for b in final.content[1:]] == [{"city": "Paris"}, {"tz": "CET"}]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


async def test_a_thinking_and_tool_turn_reaches_the_upstream_byte_identical(env: EdgeEnv) -> None:
    # Odd spacing, escapes and key order: a re-serialising gateway would change these bytes.
    body = (
        b'{ "model" : "claude-sonnet-4-6", "max_tokens": 3000, "unknown_field": {"x": [1, 2.50]},'
        b' "thinking": {"type": "enabled", "budget_tokens": 1024},'
        b' "tools": [{"name": "calc", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],'
        b' "messages": [{"role": "user", "content": "Add \\u00e9 and 2"},'
        b' {"role": "assistant", "content": [{"type": "thinking", "thinking": "Use calc \\/ now\\n", "signature": "'
        + SIGNATURE
        + b'"},'
        b' {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},'
        b' {"type": "tool_use", "id": "toolu_01", "name": "calc", "input": {"a": 1, "b": 2}}]},'
        b' {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "3"}]}]}'
    )
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages?beta=true",
            content=body,
            headers={
                "x-api-key": env.key,
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "interleaved-thinking-2025-05-14",
                "content-type": "application/json",
            },
        )
    assert answer.status_code == 200, answer.text
    received = sim_requests(env.sim_url)[-1]
    assert received["raw"] == body
    headers = dict((k.lower(), v) for k, v in received["headers"])
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers


async def test_a_body_with_tools_metadata_and_an_image_is_parsed_once(
    env: EdgeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The priced-options check, the conversation's metadata and the media estimate read the one
    parse of the body (a large body was parsed once per reader), and it still reaches the
    upstream byte for byte."""
    body = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "metadata": {"user_id": "user-parsed-once"},
            "tools": [{"name": "calc", "input_schema": {"type": "object"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        {"type": "text", "text": "hi"},
                    ],
                }
            ],
        }
    )
    parses: list[str] = []
    loads = orjson.loads

    def counting(data: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("aiapi_edge") and data == body:
            parses.append(caller)
        return loads(data)

    monkeypatch.setattr(orjson, "loads", counting)
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=body,
            headers={"x-api-key": env.key, "content-type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    assert sim_requests(env.sim_url)[-1]["raw"] == body
    assert parses == ["aiapi_edge.body"]


async def test_missing_max_tokens_becomes_4096_and_nothing_else_changes(env: EdgeEnv) -> None:
    body = b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u"}}'
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=body,
            headers={"authorization": f"Bearer {env.key}", "content-type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    received = sim_requests(env.sim_url)[-1]
    assert received["raw"] == b'{"max_tokens":4096,' + body[1:]
    headers = dict((k.lower(), v) for k, v in received["headers"])
    assert headers["anthropic-version"] == "2023-06-01"


async def test_repeated_beta_headers_are_joined_in_order_and_both_versions_pass(
    env: EdgeEnv,
) -> None:
    body = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    async with httpx.AsyncClient() as http:
        for version in ("2023-06-01", "2026-10-21"):
            answer = await http.post(
                env.url + "/v1/messages",
                content=body,
                headers=[
                    ("x-api-key", env.key),
                    ("anthropic-version", version),
                    ("anthropic-beta", "a-1"),
                    ("anthropic-beta", "b-2,c-3"),
                ],
            )
            assert answer.status_code == 200
            received = dict((k.lower(), v) for k, v in sim_requests(env.sim_url)[-1]["headers"])
            assert received["anthropic-version"] == version
            assert received["anthropic-beta"] == "a-1,b-2,c-3"


async def test_upstream_account_headers_are_dropped_and_the_request_id_is_ours(
    env: EdgeEnv,
) -> None:
    sdk = client(env)
    for stream in (False, True):
        raw = await sdk.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=20,
            stream=stream,
            messages=[{"role": "user", "content": "hello"}],
        )
        parsed = await raw.parse()
        if stream:
            async for _ in parsed:  # type: ignore[union-attr]
                pass
        names = {name.lower() for name in raw.headers}
        leaked = {
            n
            for n in names
            if "organization" in n
            or n.startswith(("anthropic-ratelimit", "cf-", "x-envoy"))
            or n in ("set-cookie", "via", "server", "x-robots-tag")
        }
        assert leaked == set()
        assert raw.headers["request-id"].startswith("req_")
        assert len(raw.headers["request-id"]) == 28
        billing_ids = [r.request_id for r in env.billing.requests]
        assert raw.headers["request-id"] == billing_ids[-1]


async def test_count_tokens_and_aliases(env: EdgeEnv) -> None:
    sdk = client(env)
    counted = await sdk.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "What is the answer?"}]
    )
    assert counted.input_tokens == 5
    received = sim_requests(env.sim_url)[-1]
    assert received["path"] == "/v1/messages/count_tokens"
    assert b"max_tokens" not in received["raw"]
