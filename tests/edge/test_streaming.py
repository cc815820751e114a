"""Streams pass through as they arrive, get pings while the upstream is silent, and a client that
leaves still pays for what the upstream generated."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .support import usage_events


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_ping_interval_s": 0.2}


def stream_body(text: str) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
    )


def active_upstream_streams(env: EdgeEnv) -> int:
    with urllib.request.urlopen(env.sim_url + "/_sim/stats", timeout=5) as answer:
        return int(json.loads(answer.read())["active_streams"])


HEADERS = {"anthropic-version": "2023-06-01"}


async def test_events_arrive_before_the_upstream_finishes_and_pings_fill_silence(
    env: EdgeEnv,
) -> None:
    text = "x [[tokens: 10]] [[fail: stall after=3 seconds=1.2 pings=off]]"
    seen_while_upstream_open = False
    frames: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            env.url + "/v1/messages",
            content=stream_body(text),
            headers={"x-api-key": env.key, **HEADERS},
        ) as answer,
    ):
        buffer = ""
        async for piece in answer.aiter_text():
            buffer += piece
            *complete, buffer = buffer.split("\n\n")
            frames += complete
            deltas = sum(f.startswith("event: content_block_delta") for f in frames)
            if deltas == 3 and not seen_while_upstream_open:
                seen_while_upstream_open = active_upstream_streams(env) == 1
    assert seen_while_upstream_open  # the first deltas were not held back
    names = [f.split("\n", 1)[0].removeprefix("event: ") for f in frames]
    stall = names[names.index("content_block_delta") + 3 :]
    assert stall[:2] == ["ping", "ping"]  # the edge pings while the upstream is silent
    assert names[-1] == "message_stop"
    [event] = await usage_events(env.bus, 1)
    assert event.usage.output_tokens == 10 and event.outcome == "ok"


async def test_a_client_that_leaves_mid_stream_still_yields_the_full_usage(env: EdgeEnv) -> None:
    text = "x [[tokens: 30]] [[fail: stall after=2 seconds=0.8 pings=off]]"
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            env.url + "/v1/messages",
            content=stream_body(text),
            headers={"x-api-key": env.key, **HEADERS},
        ) as answer,
    ):
        async for piece in answer.aiter_bytes():
            if b"content_block_delta" in piece:
                break  # leave: closing the stream drops the connection
    [event] = await usage_events(env.bus, 1)
    assert event.client_disconnected is True
    assert event.outcome == "client_disconnected"
    assert event.usage.output_tokens == 30  # what the upstream generated, not what was seen
    assert event.usage.input_tokens > 0


async def test_an_openai_client_that_leaves_also_pays_in_full(env: EdgeEnv) -> None:
    sdk = env.openai()
    stream = await sdk.chat.completions.create(
        model="claude-haiku-4-5",
        stream=True,
        messages=[
            {
                "role": "user",
                "content": "x [[tokens: 25]] [[fail: stall after=2 seconds=0.8 pings=off]]",
            }
        ],
    )
    async for _ in stream:
        break
    await stream.close()
    [event] = await usage_events(env.bus, 1)
    assert (event.route, event.client_disconnected, event.usage.output_tokens) == (
        "openai",
        True,
        25,
    )
    await asyncio.sleep(0)
