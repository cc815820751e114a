"""The upstream pool at runtime, across real processes on a strict NATS: a key the operator adds
serves on two edges within a second, a disabled key gets no new traffic, a removed key is gone,
the keys of AIAPI_UPSTREAM_API_KEYS are listed and may be changed too, each key's health, errors
and spend are visible, the test action goes through the key, and no key is ever shown or logged.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.edge.support import sim_post

from .support import Deployment, eventually, open_account
from .upstream import (
    APPLIED_WITHIN_S,
    ENV_KEY,
    keys_seen,
    pool_deployment,
    upstream_keys,
    within,
)

__all__ = ["pool_deployment"]

pytestmark = pytest.mark.slow

ADDED = "sk-ant-runtime-" + secrets.token_hex(12)
REJECTED = "sk-ant-rejected-" + secrets.token_hex(12)


def _edges(entry: dict[str, Any]) -> set[str]:
    """The edges reporting a key: an edge of several workers reports as ``<edge id>-w<i>`` from
    each of them (docs/edge.md, "Workers"), one edge all the same."""
    return {re.sub(r"-w[0-9]+$", "", e["edge_id"]) for e in entry["edges"]}


def _listed(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = admin.get("/admin/v1/upstream-keys")
    assert answer.status_code == 200, answer.text
    return {entry["id"]: entry for entry in answer.json()["data"]}


def test_the_operator_adds_disables_and_removes_upstream_keys_on_every_edge_at_runtime(
    pool_deployment: tuple[Deployment, list[str]], closer: contextlib.ExitStack
) -> None:
    deployment, edges = pool_deployment
    sim = deployment.env["AIAPI_UPSTREAM_URL"]
    texts: list[str] = []
    with deployment.admin() as admin:
        _, _, customer = open_account(admin, "20.00")
        for edge in edges:
            assert keys_seen(sim, edge, customer, 3) == {ENV_KEY}

        # The setting's key is listed (by its fingerprint id), reported by both edges.
        env_entry = eventually(
            lambda: next((e for e in _listed(admin).values() if len(_edges(e)) == 2), None)
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
            within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED in keys_seen(sim, edge, customer, 1),
            )
        assert admin.post("/admin/v1/upstream-keys", json={"key": ADDED}).status_code == 409

        # Its traffic, health and spend are visible, added up over both edges.
        def served() -> dict[str, Any] | None:
            entry = _listed(admin)[key_id]
            ok = entry["requests"] > 0 and len(_edges(entry)) == 2
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
            within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED not in keys_seen(sim, edge, customer, 1),
            )
        for edge in edges:  # and it stays out
            assert keys_seen(sim, edge, customer, 10) == {ENV_KEY}

        # The test action goes through the key (disabled or not), from an edge.
        tested = admin.post(f"/admin/v1/upstream-keys/{key_id}/test")
        texts.append(tested.text)
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is True and tested.json()["status"] == 200
        assert ADDED in upstream_keys(sim)

        # Enabled again: back within a second.
        assert admin.patch(f"/admin/v1/upstream-keys/{key_id}",
                           json={"enabled": True}).status_code == 200  # fmt: skip
        changed_at = time.monotonic()
        for edge in edges:
            within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED in keys_seen(sim, edge, customer, 1),
            )

        # Removed: gone from the list and from every edge.
        assert admin.delete(f"/admin/v1/upstream-keys/{key_id}").status_code == 204
        changed_at = time.monotonic()
        for edge in edges:
            within(
                APPLIED_WITHIN_S - (time.monotonic() - changed_at),
                lambda edge=edge: ADDED not in keys_seen(sim, edge, customer, 1),
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
