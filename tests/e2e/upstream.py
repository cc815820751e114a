"""The two-edge deployment of the upstream pool tests (the e2e test and the console's browser
test share it) and how a test sees which upstream key traffic goes through."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_shared.upstream_seal import generate_keypair
from aiapi_testkit.plugin import SpawnFn

from tests.edge.support import sim_post, sim_requests

from .conftest import deploy, second_edge
from .support import Deployment, eventually

# The key of AIAPI_UPSTREAM_API_KEYS in every e2e deployment.
ENV_KEY = "sk-ant-e2e-upstream"
# Every edge applies a change within this (CONTRACT.md §3).
APPLIED_WITHIN_S = 1.0


@pytest.fixture
def pool_deployment(
    database_url: str,
    strict_nats_server: EmbeddedNats,
    nats_login: Callable[[str], dict[str, str]],
    spawn: SpawnFn,
    tmp_path: Path,
) -> Iterator[tuple[Deployment, list[str]]]:
    """The deployment with the upstream seal keys and a second edge; yields it and both edges'
    URLs. The edges pick keys round-robin (no affinity): each key's share is its weight's."""
    private, public = generate_keypair()
    extra = {
        "AIAPI_UPSTREAM_SEAL_PUBLIC_KEY": public,
        "AIAPI_UPSTREAM_SEAL_PRIVATE_KEY": private,
        "AIAPI_EDGE_UPSTREAM_REPORT_S": "0.5",
        "AIAPI_EDGE_KEY_AFFINITY": "false",
    }
    with deploy(
        database_url, strict_nats_server, nats_login, spawn, tmp_path, extra_env=extra
    ) as deployment:
        yield deployment, [deployment.edge_url, second_edge(deployment, spawn, tmp_path)]


def ask(edge: str, key: str) -> None:
    """One small message through ``edge`` with the customer's ``key``; it must succeed."""
    answer = httpx.post(
        edge + "/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-haiku-4-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}],
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def upstream_keys(sim: str) -> set[str]:
    """The upstream keys the simulator's recorded requests arrived with."""
    return {
        value
        for entry in sim_requests(sim)
        for name, value in entry["headers"]
        if name.lower() == "x-api-key"
    }


def keys_seen(sim: str, edge: str, customer_key: str, requests: int) -> set[str]:
    """The upstream keys ``requests`` requests through ``edge`` arrived with."""
    sim_post(sim, "/_sim/reset")
    for _ in range(requests):
        ask(edge, customer_key)
    return upstream_keys(sim)


def within(deadline_s: float, check: Callable[[], bool]) -> None:
    """``check`` holds before the deadline (counted from the change's answer)."""
    eventually(check, timeout_s=deadline_s, every_s=0.0)
