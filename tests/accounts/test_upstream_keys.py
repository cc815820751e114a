"""The upstream pool on the operator API, in-process (real PostgreSQL and NATS): keys are stored
and published only sealed to the edges' key, answers show hints, bad input gets a clear 400, the
edges' own keys (known from their reports) are listed and changed by records without a key, and
the bucket is repaired from the table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiapi_accounts.upstream_view import pool_entries
from aiapi_shared.bus import Bus, KeyNotFound, KeyValue
from aiapi_shared.events.records_v1 import (
    UPSTREAM_KEYS_BUCKET,
    UPSTREAM_STATUS_BUCKET,
    UpstreamError,
    UpstreamKeyRecord,
    UpstreamKeyStatus,
    UpstreamStatusReport,
)
from aiapi_shared.upstream_seal import fingerprint, generate_keypair, unseal

from .conftest import ADMIN, Running, make_settings, run_app

SECRET = "sk-ant-operator-added-7f3a9c"
ENV_SECRET = "sk-ant-from-the-setting-42"
ENV_ID = "env-0123456789abcdef"
PRIVATE, PUBLIC = generate_keypair()
U = "/admin/v1/upstream-keys"


@pytest.fixture
async def sealed(database_url: str, nats_url: str, bus: Bus) -> AsyncIterator[Running]:
    settings = make_settings(database_url, nats_url, upstream_seal_public_key=PUBLIC)
    async with run_app(settings, bus) as app:
        yield app


async def _record(kv: KeyValue, key_id: str) -> UpstreamKeyRecord:
    entry = await kv.get(key_id)
    assert entry.value is not None
    return UpstreamKeyRecord.model_validate_json(entry.value)


async def _report(bus: Bus, edge_id: str, *statuses: UpstreamKeyStatus) -> None:
    """An edge's status report, as the edge writes it (aiapi_edge.upstream_status)."""
    kv = await bus.ensure_kv(UPSTREAM_STATUS_BUCKET)
    now = datetime.now(UTC)
    report = UpstreamStatusReport(edge_id=edge_id, reported_at=now, started_at=now, keys=statuses)
    await kv.put(edge_id, report.model_dump_json().encode())


def _env_status(health: str, requests: int, errors: dict[str, int]) -> UpstreamKeyStatus:
    at = datetime.now(UTC)
    return UpstreamKeyStatus(
        id=ENV_ID, source="env", hint="...s-42", base_url="https://api.anthropic.com",
        health=health, requests=requests, errors=errors, input_tokens=10, output_tokens=5,
        list_cost=1500,
        recent_errors=tuple(UpstreamError(at=at, outcome=o, detail="503") for o in errors),
    )  # fmt: skip


async def _eventually_listed(running: Running, key_id: str) -> dict[str, object]:
    for _ in range(100):
        listed = (await running.admin.get(U, headers=ADMIN)).json()["data"]
        found = [entry for entry in listed if entry["id"] == key_id]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key_id} never listed")


async def test_without_the_public_key_no_key_can_be_added(running: Running) -> None:
    assert (await running.admin.get(U, headers=ADMIN)).json() == {"data": []}
    refused = await running.admin.post(U, json={"key": SECRET}, headers=ADMIN)
    assert refused.status_code == 503
    assert "AIAPI_UPSTREAM_SEAL_PUBLIC_KEY" in refused.text and SECRET not in refused.text
    assert (await running.admin.get(U)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"key": "sk ant with spaces"},
        {"key": "sk-ant-a,sk-ant-b"},
        {"key": "short"},
        {"key": SECRET, "weight": 0},
        {"key": SECRET, "weight": 1001},
        {"key": SECRET, "base_url": "ftp://example.com"},
        {"key": SECRET, "organization": "no spaces please"},
        {"key": SECRET, "models": ["has space"]},
        {"key": SECRET, "colour": "blue"},
    ],
)
async def test_bad_input_is_a_clear_400_that_never_echoes_the_key(
    sealed: Running, body: dict[str, object]
) -> None:
    answer = await sealed.admin.post(U, json=body, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    for value in ("sk ant with spaces", "sk-ant-a,sk-ant-b", SECRET):
        assert value not in answer.text


async def test_a_key_is_stored_and_published_sealed_and_answered_by_its_hint(
    sealed: Running, bus: Bus
) -> None:
    kv = await bus.ensure_kv(UPSTREAM_KEYS_BUCKET)
    added = await sealed.admin.post(
        U,
        json={"key": SECRET, "organization": "acme", "weight": 5, "models": ["claude-haiku-4-5"]},
        headers=ADMIN,
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert SECRET not in added.text and body["hint"] == "..." + SECRET[-4:]
    assert (body["source"], body["weight"], body["models"]) == ("operator", 5, ["claude-haiku-4-5"])
    assert body["health"] == "unknown" and body["edges"] == []  # no edge reports it yet
    record = await _record(kv, body["id"])
    assert record.sealed_key is not None and SECRET not in record.model_dump_json()
    assert unseal(PRIVATE, record.sealed_key) == SECRET
    assert (record.weight, record.organization, record.enabled) == (5, "acme", True)
    again = await sealed.admin.post(U, json={"key": SECRET}, headers=ADMIN)
    assert again.status_code == 409

    patched = await sealed.admin.patch(
        f"{U}/{body['id']}", json={"enabled": False, "models": []}, headers=ADMIN
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    changed = await _record(kv, body["id"])
    assert (changed.enabled, changed.models) == (False, ())
    assert changed.updated_at > record.updated_at

    rotated = await sealed.admin.patch(
        f"{U}/{body['id']}", json={"key": SECRET + "-next"}, headers=ADMIN
    )
    assert rotated.status_code == 200 and rotated.json()["hint"] == "...next"
    sealed_next = (await _record(kv, body["id"])).sealed_key
    assert sealed_next is not None and unseal(PRIVATE, sealed_next) == SECRET + "-next"

    assert (await sealed.admin.delete(f"{U}/{body['id']}", headers=ADMIN)).status_code == 204
    with pytest.raises(KeyNotFound):
        await kv.get(body["id"])
    assert (await sealed.admin.delete(f"{U}/{body['id']}", headers=ADMIN)).status_code == 404
    missing = await sealed.admin.patch(f"{U}/uk_nope", json={"weight": 2}, headers=ADMIN)
    assert missing.status_code == 404


async def test_the_edges_own_keys_are_listed_from_their_reports_and_changed_by_records(
    sealed: Running, bus: Bus
) -> None:
    kv = await bus.ensure_kv(UPSTREAM_KEYS_BUCKET)
    await _report(bus, "edge-a", _env_status("healthy", 7, {}))
    await _report(bus, "edge-b", _env_status("open", 3, {"server_error": 2}))
    entry = await _eventually_listed(sealed, ENV_ID)
    assert (entry["source"], entry["hint"], entry["health"]) == ("env", "...s-42", "open")
    assert entry["requests"] == 10 and entry["errors"] == {"server_error": 2}
    assert entry["tokens"] == {"input": 20, "output": 10, "cache_read": 0, "cache_creation": 0}
    assert entry["spend_usd"] == "0.000003"
    assert [e["edge_id"] for e in entry["edges"]] == ["edge-a", "edge-b"]  # type: ignore[union-attr]

    disabled = await sealed.admin.patch(f"{U}/{ENV_ID}", json={"enabled": False}, headers=ADMIN)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    record = await _record(kv, ENV_ID)
    assert (record.source, record.sealed_key, record.enabled) == ("env", None, False)
    refused = await sealed.admin.patch(f"{U}/{ENV_ID}", json={"key": SECRET}, headers=ADMIN)
    assert refused.status_code == 400

    assert (await sealed.admin.delete(f"{U}/{ENV_ID}", headers=ADMIN)).status_code == 204
    assert (await _record(kv, ENV_ID)).removed is True
    listed = (await sealed.admin.get(U, headers=ADMIN)).json()["data"]
    assert ENV_ID not in [e["id"] for e in listed]
    # Adding the very same key brings it back, without storing it a second time.
    env_key_id = "env-" + fingerprint(ENV_SECRET)
    await _report(
        bus, "edge-a", _env_status("healthy", 7, {}).model_copy(update={"id": env_key_id})
    )
    await _eventually_listed(sealed, env_key_id)
    twice = await sealed.admin.post(U, json={"key": ENV_SECRET}, headers=ADMIN)
    assert twice.status_code == 409  # in the pool already, through the setting
    assert (await sealed.admin.delete(f"{U}/{env_key_id}", headers=ADMIN)).status_code == 204
    back = await sealed.admin.post(U, json={"key": ENV_SECRET}, headers=ADMIN)
    assert back.status_code == 201, back.text
    assert (back.json()["id"], back.json()["source"]) == (env_key_id, "env")
    restored = await _record(kv, env_key_id)
    assert (restored.removed, restored.enabled, restored.sealed_key) == (False, True, None)

    unknown = await sealed.admin.patch(f"{U}/env-ffffffffffffffff", json={"weight": 2},
                                       headers=ADMIN)  # fmt: skip
    assert unknown.status_code == 404


async def test_the_test_action_needs_an_edge_and_the_bucket_is_repaired_from_the_table(
    sealed: Running, bus: Bus
) -> None:
    kv = await bus.ensure_kv(UPSTREAM_KEYS_BUCKET)
    added = (await sealed.admin.post(U, json={"key": SECRET}, headers=ADMIN)).json()
    nobody = await sealed.admin.post(f"{U}/{added['id']}/test", headers=ADMIN)
    assert nobody.status_code == 503 and "edge" in nobody.json()["error"]["message"]
    assert (await sealed.admin.post(f"{U}/uk_nope/test", headers=ADMIN)).status_code == 404
    await kv.delete(added["id"])
    await kv.put("uk_stale", b"{}")
    pool = sealed.service.upstream_pool
    assert pool is not None
    assert await pool.resync() == (1, 1)
    assert (await _record(kv, added["id"])).id == added["id"]
    with pytest.raises(KeyNotFound):
        await kv.get("uk_stale")


def test_a_removed_operator_key_an_edge_still_reports_is_not_listed() -> None:
    now = datetime.now(UTC)
    gone = _env_status("healthy", 1, {}).model_copy(update={"id": "uk_gone", "source": "operator"})
    report = UpstreamStatusReport(edge_id="e", reported_at=now, started_at=now,
                                  keys=(gone, _env_status("healthy", 1, {})))  # fmt: skip
    assert [entry.id for entry in pool_entries([], [report])] == [ENV_ID]
