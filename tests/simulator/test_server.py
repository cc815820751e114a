"""Server-level behaviour: the CLI, pacing and latency settings, restricted keys."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest
from aiapi_simulator import SimulatorConfig
from aiapi_simulator.__main__ import parse_args
from aiapi_simulator.testing import running_simulator

from tests.simulator.conftest import HEADERS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_arguments_become_the_config() -> None:
    config = parse_args(
        [
            "--port",
            "9001",
            "--latency-ms",
            "20",
            "--tokens-per-second",
            "50",
            "--ping-interval",
            "2",
        ]
    )
    assert (config.port, config.latency_ms, config.tokens_per_second, config.ping_interval) == (
        9001,
        20,
        50.0,
        2.0,
    )


@pytest.fixture
def cli_server() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aiapi_simulator", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base_url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_cli_serves_the_api(cli_server: str) -> None:
    with anthropic.Anthropic(base_url=cli_server, api_key="k", max_retries=0) as client:
        message = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "from the CLI"}],
        )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: from the CLI"


def test_paced_and_delayed_streams_carry_the_same_content() -> None:
    config = SimulatorConfig(latency_ms=10, tokens_per_second=500, ping_interval=0.001)
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "[[tokens: 12]] paced"}],
    }
    with running_simulator(config) as base_url:
        with anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0) as client:
            with client.messages.stream(**params) as stream:  # type: ignore[arg-type]
                streamed = stream.get_final_message()
            created = client.messages.create(**params)  # type: ignore[arg-type]
        raw = httpx.post(
            base_url + "/v1/messages", headers=HEADERS, json={**params, "stream": True}
        )
    assert streamed.usage.output_tokens == created.usage.output_tokens == 12
    assert streamed.model_dump(exclude={"id"}) == created.model_dump(exclude={"id"})
    assert raw.text.count("event: content_block_delta") == 12
    assert raw.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_restricted_keys_and_required_version() -> None:
    config = SimulatorConfig(api_keys=frozenset({"sk-ant-good"}), strict_models=True)
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    with running_simulator(config) as base_url:
        version = {"anthropic-version": "2023-06-01"}
        bad = httpx.post(
            base_url + "/v1/messages", headers={"x-api-key": "nope", **version}, json=body
        )
        good = httpx.post(
            base_url + "/v1/messages", headers={"x-api-key": "sk-ant-good", **version}, json=body
        )
        unversioned = httpx.post(
            base_url + "/v1/messages", headers={"x-api-key": "sk-ant-good"}, json=body
        )
        unknown = httpx.post(
            base_url + "/v1/messages",
            headers={"x-api-key": "sk-ant-good", **version},
            json={**body, "model": "claude-none"},
        )
    assert (bad.status_code, bad.json()["error"]["message"]) == (401, "invalid x-api-key")
    assert good.status_code == 200
    assert unversioned.status_code == 400
    assert "anthropic-version" in unversioned.json()["error"]["message"]
    assert unknown.status_code == 404
