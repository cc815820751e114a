"""The drain after a client left is bounded: an upstream that stays silent longer is cut off and
the usage known so far (``message_start``'s) is what gets recorded."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from .conftest import EdgeEnv
from .support import usage_events


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"edge_disconnect_drain_s": 0.3}


async def test_the_drain_gives_up_after_its_bound(env: EdgeEnv) -> None:
    body = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [
                {
                    "role": "user",
                    "content": "x [[tokens: 30]] [[fail: stall after=2 seconds=5 pings=off]]",
                }
            ],
        }
    )
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            env.url + "/v1/messages",
            content=body,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        ) as answer,
    ):
        async for piece in answer.aiter_bytes():
            if b"content_block_delta" in piece:
                break
    [event] = await usage_events(env.bus, 1, timeout_s=4)  # well before the 5 s stall ends
    assert event.client_disconnected is True
    assert event.outcome == "client_disconnected"
    assert event.usage.input_tokens > 0
    assert event.usage.output_tokens == 1  # message_start's figure: nothing later was reported
