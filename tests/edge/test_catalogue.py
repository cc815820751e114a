"""Aliases: a requested id is served and priced as the sold model it names, on both routes; the
client's bytes stay as they were but for the model value."""

from __future__ import annotations

import httpx
import pytest
from aiapi_shared.catalogue import Catalogue, default_catalogue

from .conftest import EdgeEnv
from .support import sim_requests, usage_events


@pytest.fixture
def edge_catalogue() -> Catalogue:
    return default_catalogue().model_copy(update={"aliases": {"claude-next-1": "claude-haiku-4-5"}})


async def test_an_alias_is_served_and_metered_as_the_model_it_names(env: EdgeEnv) -> None:
    body = b'{"model": "claude-next-1", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}'
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            env.url + "/v1/messages",
            content=body,
            headers={"x-api-key": env.key, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 200
    assert sim_requests(env.sim_url)[-1]["raw"] == body.replace(
        b"claude-next-1", b"claude-haiku-4-5"
    )
    await env.openai().chat.completions.create(
        model="claude-next-1", messages=[{"role": "user", "content": "hi"}]
    )
    events = await usage_events(env.bus, 2)
    assert {(e.model, e.requested_model, e.route) for e in events} == {
        ("claude-haiku-4-5", "claude-next-1", "anthropic"),
        ("claude-haiku-4-5", "claude-next-1", "openai"),
    }
    assert [r.model for r in env.billing.requests] == ["claude-haiku-4-5"] * 2
    # /v1/models lists exactly what is sold: aliases are not models.
    assert "claude-next-1" not in [m.id async for m in env.openai().models.list()]
