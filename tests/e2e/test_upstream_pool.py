"""The upstream pool at runtime, across real processes on a strict NATS: a key the operator adds
serves on two edges within a second, a disabled key gets no new traffic, a removed key is gone,
the keys of AIAPI_UPSTREAM_API_KEYS are listed and may be changed too, each key's health, errors
and spend are visible, the test action goes through the key, and no key is ever shown or logged.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiapi_cli.embedded import EmbeddedNats
from aiapi_cli.ports import free_port
from aiapi_shared.upstream_seal import generate_keypair
from aiapi_testkit.plugin import SpawnFn
from aiapi_testkit.process import internal_env

from tests.edge.support import sim_post, sim_requests

from .conftest import deploy
from .support import Deployment, eventually, open_account

pytestmark = pytest.mark.slow

ENV_KEY = "sk-ant-e2e-upstream"
ADDED = "sk-ant-runtime-" + secrets.token_hex(12)
REJECTED = "sk-ant-rejected-" + secrets.token_hex(12)
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
    private, public = generate_keypair()
    extra = {
        "AIAPI_UPSTREAM_SEAL_PUBLIC_KEY": public,
        "AIAPI_UPSTREAM_SEAL_PRIVATE_KEY": private,
        "AIAPI_EDGE_UPSTREAM_REPORT_S": "0.5",
        "AIAPI_EDGE_KEY_AFFINITY": "false",  # round-robin: each key's share is its weight's
    }
    with deploy(
        database_url, strict_nats_server, nats_login, spawn, tmp_path, extra_env=extra
    ) as deployment:
        port = free_port()
        second, ready = internal_env(
            {
                **deployment.env_of("edge"),
                "AIAPI_EDGE_PORT": str(port),
                "AIAPI_DATA_DIR": str(tmp_path / "second-edge"),
            }
        )
        spawn([sys.executable, "-m", "aiapi_edge"], env=second, health_url=ready,
              name="edge-2", timeout_s=60)  # fmt: skip
        yield deployment, [deployment.edge_url, f"http://127.0.0.1:{port}"]


def _ask(edge: str, key: str) -> None:
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


def _upstream_keys(sim: str) -> set[str]:
    """The upstream keys the simulator's recorded requests arrived with."""
    return {
        value
        for entry in sim_requests(sim)
        for name, value in entry["headers"]
        if name.lower() == "x-api-key"
    }


def _keys_seen(sim: str, edge: str, customer_key: str, requests: int) -> set[str]:
    """The upstream keys ``requests`` requests through ``edge`` arrived with."""
    sim_post(sim, "/_sim/reset")
    for _ in range(requests):
        _ask(edge, customer_key)
    return _upstream_keys(sim)


def _listed(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = admin.get("/admin/v1/upstream-keys")
    assert answer.status_code == 200, answer.text
    return {entry["id"]: entry for entry in answer.json()["data"]}


def _within(deadline_s: float, check: Callable[[], bool]) -> None:
    """``check`` holds before the deadline (counted from the change's answer)."""
    eventually(check, timeout_s=deadline_s, every_s=0.0)


def test_the_operator_adds_disables_and_removes_upstream_keys_on_every_edge_at_runtime(
    pool_deployment: tuple[Deployment, list[str]], closer: contextlib.ExitStack
) -> None:
    deployment, edges = pool_deployment
    sim = deployment.env["AIAPI_UPSTREAM_URL"]
    texts: list[str] = []
    with deployment.admin() as admin:
        _, _, customer = open_account(admin, "20.00")
        for edge in edges:
            assert _keys_seen(sim, edge, customer, 3) == {ENV_KEY}

        # The setting's key is listed (by its fingerprint id), reported by both edges.
        env_entry = eventually(
            lambda: next((e for e in _listed(admin).values() if len(e["edges"]) == 2), None)
        )
        assert env_entry["source"] == "env" and env_entry["hint"] == "...ream"
        assert env_entry["id"].startswith("env-") and env_entry["health"] == "healthy"

        # Added: both edges serve it within a second. With weight 1000 against 1 it takes the
        # next turn (and 1000 of every 1001), so one request tells whether an edge has it.
        added = admin.post(
            "/admin/v1/upstream-keys",
            json={"key": ADDED, "organization": "acme", "weight": 1000},
        )
        texts.append(added.text)
        assert added.status_code == 201, added.text
        key_id = added.json()["id"]
        assert added.json()["hint"] == "..." + ADDED[-4:] and "key" not in added.json()
        changed_at = time.monotonic()
        for edge in edges:
            _within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED in _keys_seen(sim, edge, customer, 1),
            )
        assert admin.post("/admin/v1/upstream-keys", json={"key": ADDED}).status_code == 409

        # Its traffic, health and spend are visible, added up over both edges.
        def served() -> dict[str, Any] | None:
            entry = _listed(admin)[key_id]
            ok = entry["requests"] > 0 and len(entry["edges"]) == 2
            return entry if ok and entry["tokens"]["output"] > 0 else None

        entry = eventually(served)
        texts.append(str(entry))
        assert entry["health"] == "healthy" and entry["organization"] == "acme"
        assert entry["spend_usd"] != "0.00" and entry["enabled"] is True

        # Disabled: no new traffic on either edge within a second.
        disabled = admin.patch(f"/admin/v1/upstream-keys/{key_id}", json={"enabled": False})
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        changed_at = time.monotonic()
        for edge in edges:
            _within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED not in _keys_seen(sim, edge, customer, 1),
            )
        for edge in edges:  # and it stays out
            assert _keys_seen(sim, edge, customer, 10) == {ENV_KEY}

        # The test action goes through the key (disabled or not), from an edge.
        tested = admin.post(f"/admin/v1/upstream-keys/{key_id}/test")
        texts.append(tested.text)
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is True and tested.json()["status"] == 200
        assert ADDED in _upstream_keys(sim)

        # Enabled again: back within a second.
        assert admin.patch(f"/admin/v1/upstream-keys/{key_id}",
                           json={"enabled": True}).status_code == 200  # fmt: skip
        changed_at = time.monotonic()
        for edge in edges:
            _within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED in _keys_seen(sim, edge, customer, 1),
            )

        # Removed: gone from the list and from every edge.
        assert admin.delete(f"/admin/v1/upstream-keys/{key_id}").status_code == 204
        changed_at = time.monotonic()
        for edge in edges:
            _within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED not in _keys_seen(sim, edge, customer, 1),
            )
        assert key_id not in _listed(admin)
        assert admin.delete(f"/admin/v1/upstream-keys/{key_id}").status_code == 404

        # A key the upstream refuses: the test says so, by the verdict, without its message.
        bad = admin.post("/admin/v1/upstream-keys", json={"key": REJECTED, "enabled": False})
        assert bad.status_code == 201, bad.text
        sim_post(sim, "/_sim/faults", {"fault": "401", "count": 1, "api_key": REJECTED})
        refused = admin.post(f"/admin/v1/upstream-keys/{bad.json()['id']}/test")
        texts.append(refused.text)
        assert refused.status_code == 200, refused.text
        assert refused.json()["ok"] is False and refused.json()["outcome"] == "key_rejected"
        assert refused.json()["status"] == 401

        # The setting's own key may be weighted and disabled like any other.
        env_id = env_entry["id"]
        patched = admin.patch(f"/admin/v1/upstream-keys/{env_id}", json={"weight": 3})
        assert patched.status_code == 200, patched.text
        assert patched.json()["weight"] == 3 and patched.json()["source"] == "env"
        texts.append(str(_listed(admin)))

    for text in [*texts, deployment.logs()]:
        for secret in (ADDED, REJECTED, ENV_KEY):
            assert secret not in text
