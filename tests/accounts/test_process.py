"""`python -m aiapi_accounts` as a real process: it refuses to start without an operator token,
serves the operator API on its admin port only, resyncs the key records in KV at start after a
crash, stops gracefully on SIGTERM, and its logs hold no key, password, session cookie or
operator token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import psycopg
from aiapi_cli.ports import free_port
from aiapi_shared import apikeys
from aiapi_shared.bus import Bus
from aiapi_shared.events.records_v1 import KEYS_BUCKET, KeyRecord
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import ADMIN, ADMIN_TOKEN, PASSWORD

ARGV = [sys.executable, "-m", "aiapi_accounts"]


def service_env(database_url: str, nats_url: str, port: int) -> dict[str, str]:
    """The process's environment: the customer API on ``port``, free admin and internal ports."""
    return {
        "AIAPI_DATABASE_URL": database_url,
        "AIAPI_NATS_URL": nats_url,
        "AIAPI_ACCOUNTS_PORT": str(port),
        "AIAPI_ADMIN_PORT": str(free_port()),
        "AIAPI_INTERNAL_PORT": str(free_port()),
        "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN,
        "AIAPI_ARGON2_TIME_COST": "1",
        "AIAPI_ARGON2_MEMORY_KIB": "1024",
        "AIAPI_COOKIE_SECURE": "false",
        "AIAPI_LOG_LEVEL": "DEBUG",
    }


def admin_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['AIAPI_ADMIN_PORT']}"


def ready_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['AIAPI_INTERNAL_PORT']}/readyz"


def test_refuses_to_start_without_an_operator_token(database_url: str, nats_url: str) -> None:
    env = service_env(database_url, nats_url, free_port())
    env["AIAPI_ADMIN_TOKEN"] = ""
    done = subprocess.run(ARGV, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2  # refused to start
    assert b"AIAPI_ADMIN_TOKEN" in done.stderr


async def test_the_operator_api_is_on_the_admin_port_only(
    database_url: str, nats_url: str, spawn: SpawnFn
) -> None:
    port = free_port()
    env = service_env(database_url, nats_url, port)
    proc = spawn(ARGV, env=env, health_url=ready_url(env), name="accounts")
    public = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/admin/v1/accounts", "/admin/v1/catalogue", "/healthz", "/metrics"):
            answer = await http.get(public + path, headers=ADMIN)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["type"] == "not_found_error"  # the accounts shape
        created = await http.post(
            admin_url(env) + "/admin/v1/accounts", json={"email": "p@example.com"}, headers=ADMIN
        )
        assert created.status_code == 201
        assert (await http.get(admin_url(env) + "/api/v1/account")).status_code == 404
        operator_docs = (await http.get(admin_url(env) + "/openapi.json")).json()
        assert "/admin/v1/accounts" in operator_docs["paths"]
        customer_docs = (await http.get(public + "/openapi.json")).json()
        assert "/api/v1/account" in customer_docs["paths"]
        assert (await http.get(proc.probe_url("/livez"))).status_code == 200
    assert proc.listening_ports() == {
        port,
        int(env["AIAPI_ADMIN_PORT"]),
        int(env["AIAPI_INTERNAL_PORT"]),
    }
    assert proc.stop() == 0


async def test_a_restart_after_a_crash_resyncs_every_key_record(
    database_url: str, nats_url: str, bus: Bus, spawn: SpawnFn
) -> None:
    env = service_env(database_url, nats_url, free_port())
    proc = spawn(ARGV, env=env, health_url=ready_url(env), name="accounts")
    async with httpx.AsyncClient(base_url=admin_url(env), headers=ADMIN) as client:
        account = (await client.post("/admin/v1/accounts", json={"email": "k@example.com"})).json()
        url = f"/admin/v1/accounts/{account['id']}/keys"
        kept = (await client.post(url, json={"name": "kept"})).json()
        revoked = (await client.post(url, json={"name": "revoked"})).json()
        assert (await client.delete(f"{url}/{revoked['id']}")).status_code == 204
    proc.kill()

    kv = await bus.ensure_kv(KEYS_BUCKET)
    kept_hash, revoked_hash = apikeys.key_hash(kept["key"]), apikeys.key_hash(revoked["key"])
    forged = (await kv.get(kept_hash)).value
    assert forged is not None
    await kv.delete(kept_hash)  # lost
    await kv.put(revoked_hash, forged.replace(kept["id"].encode(), revoked["id"].encode()))
    await kv.put("0" * 64, forged)  # a key nobody issued
    # A change the crashed process committed but never wrote to KV.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE accounts.accounts SET plan = 'pro', updated_at = clock_timestamp()")

    proc.start(timeout_s=30)
    kept_record = KeyRecord.model_validate_json((await kv.get(kept_hash)).value or b"")
    assert (kept_record.key_status, kept_record.plan) == ("active", "pro")
    revoked_record = KeyRecord.model_validate_json((await kv.get(revoked_hash)).value or b"")
    assert revoked_record.key_status == "revoked"
    assert "0" * 64 not in await kv.keys()


async def test_logs_of_a_full_run_hold_no_secrets(
    database_url: str, nats_url: str, spawn: SpawnFn
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(database_url, nats_url, port)
    proc = spawn(ARGV, env=env, health_url=ready_url(env), name="accounts")
    creds = {"email": "secret@example.com", "password": PASSWORD}
    async with (
        httpx.AsyncClient(base_url=base) as client,
        httpx.AsyncClient(base_url=admin_url(env), headers=ADMIN) as operator,
    ):
        account = (
            await operator.post("/admin/v1/accounts", json={"email": "a@example.com"})
        ).json()
        issued = (
            await operator.post(f"/admin/v1/accounts/{account['id']}/keys", json={"name": "k"})
        ).json()
        await client.post("/api/v1/auth/sign-up", json=creds)
        await client.post("/api/v1/auth/sign-in", json={**creds, "password": "wrong " + PASSWORD})
        await client.post("/api/v1/auth/sign-up", json={**creds, "extra": PASSWORD})
        signed = await client.post("/api/v1/auth/sign-in", json=creds)
        csrf = signed.json()["csrf_token"]
        session = client.cookies["aiapi_session"]
        mine = (
            await client.post(
                "/api/v1/account/keys", json={"name": "m"}, headers={"x-csrf-token": csrf}
            )
        ).json()
        await operator.get(
            "/admin/v1/accounts/x", headers={"authorization": f"Bearer {mine['key']}"}
        )
    assert proc.stop() == 0  # SIGTERM: a clean exit
    log = proc.log_text()
    assert "accounts service started" in log
    assert "accounts service stopped" in log
    for secret in (issued["key"], mine["key"], PASSWORD, ADMIN_TOKEN, session, csrf):
        assert secret not in log
    assert "sk-cc-" not in log


async def test_request_heads_are_bounded_on_both_listeners(
    database_url: str, nats_url: str, spawn: SpawnFn
) -> None:
    """Like the edge (aiapi_shared.http_guard): a head over 64 KiB is a 431 in the accounts
    error shape, and a head that stops arriving is answered 408 and closed (slowloris)."""
    port = free_port()
    env = service_env(database_url, nats_url, port)
    spawn(ARGV, env=env, health_url=ready_url(env), name="accounts")
    for listener in (port, int(env["AIAPI_ADMIN_PORT"])):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener)
        # Just over the bound, in one write: the server reads all of it before it answers.
        writer.write(
            b"GET /api/v1/account HTTP/1.1\r\nhost: a\r\nx-pad: %s\r\n\r\n" % (b"a" * 66_000)
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), head
        assert json.loads(body)["error"]["type"] == "invalid_request_error"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/account HTTP/1.1\r\nhost: a\r\n")  # and then nothing
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 60)  # closed by the server, not by us
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
