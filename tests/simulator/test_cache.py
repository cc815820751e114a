"""Prompt caching: the prefix up to the last breakpoint is written once, then read."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx

from tests.simulator.conftest import HEADERS

SYSTEM_TEXT = "You are a careful assistant. " * 20  # 580 characters -> 145 tokens


def cached_params(question: str, ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl is not None:
        control["ttl"] = ttl
    return {
        "model": "claude-opus-4-7",
        "max_tokens": 50,
        "system": [{"type": "text", "text": SYSTEM_TEXT, "cache_control": control}],
        "messages": [{"role": "user", "content": question}],
    }


def test_first_request_writes_the_cache_and_the_next_reads_it(
    client: anthropic.Anthropic,
) -> None:
    first = client.messages.create(**cached_params("What now?"))
    assert first.usage.cache_creation_input_tokens == 145
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 145
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.usage.input_tokens == 3  # "What now?" is 9 characters
    second = client.messages.create(**cached_params("And then, what happens?"))
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 145
    assert second.usage.input_tokens == 6


def test_one_hour_breakpoints_are_reported_apart(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**cached_params("q", ttl="1h"))
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 145
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_the_cache_belongs_to_one_upstream_key(
    client: anthropic.Anthropic, simulator_url: str
) -> None:
    client.messages.create(**cached_params("q"))
    with anthropic.Anthropic(base_url=simulator_url, api_key="sk-ant-b", max_retries=0) as other:
        assert other.messages.create(**cached_params("q")).usage.cache_creation_input_tokens == 145


def test_the_stream_reports_cache_figures_at_start_and_end(http: httpx.Client) -> None:
    http.post("/v1/messages", headers=HEADERS, json=cached_params("warm"))
    response = http.post(
        "/v1/messages", headers=HEADERS, json={**cached_params("warm"), "stream": True}
    )
    lines = response.text.split("\n")
    start, delta = lines[1], next(line for line in lines if '"message_delta"' in line)
    assert '"input_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":145' in start
    assert '"input_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":145' in delta


def test_clearing_the_cache_makes_the_next_request_write_again(
    client: anthropic.Anthropic, http: httpx.Client
) -> None:
    client.messages.create(**cached_params("q"))
    assert http.delete("/_sim/cache").json() == {"cache_entries": 0}
    assert client.messages.create(**cached_params("q")).usage.cache_creation_input_tokens == 145
