"""`aiapi admin ...` against a running accounts service: each subcommand calls its operator route
and prints the JSON answer; errors give a non-zero status."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from aiapi_cli.admin import admin_main
from aiapi_cli.ports import free_port
from aiapi_shared import apikeys
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import ADMIN_TOKEN
from tests.accounts.test_process import ARGV, admin_url, ready_url, service_env


async def run(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str, stdin: str = ""
) -> tuple[int, Any]:
    """The command's exit status and printed JSON; ``stdin`` is what it may read."""
    code = await asyncio.to_thread(admin_main, list(argv), environ=env, stdin=io.StringIO(stdin))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


async def test_every_admin_subcommand_calls_its_route(
    database_url: str, nats_url: str, spawn: SpawnFn, capsys: pytest.CaptureFixture[str]
) -> None:
    service = service_env(database_url, nats_url, free_port())
    spawn(ARGV, env=service, health_url=ready_url(service), name="accounts")
    env = {"AIAPI_ADMIN_URL": admin_url(service), "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}

    code, created = await run(
        capsys, env, "accounts", "create", "--email", "cli@example.com", "--plan", "pro"
    )
    assert (code, created["plan"]) == (0, "pro")
    account_id = created["id"]
    code, key = await run(capsys, env, "keys", "create", account_id, "--name", "cli")
    assert code == 0
    assert apikeys.is_well_formed(key["key"])
    assert await run(capsys, env, "keys", "revoke", account_id, key["id"]) == (0, {"status": 204})
    # Billing and payments are not running here: their routes answer 503, and the CLI says so.
    for argv in (
        ("deposit-addresses", account_id),
        ("deposits", account_id),
        ("accounts", "get", account_id),
        ("accounts", "set-plan", account_id, "basic"),
        ("accounts", "suspend", account_id),
        ("accounts", "activate", account_id),
        ("adjust", account_id, "10.00", "--reason", "gift", "--idempotency-key", "k1"),
        ("rates", "set", "ETH", "3000.00"),
        ("sweep-plan", "--to-evm", "0x" + "11" * 20),
    ):
        code, body = await run(capsys, env, *argv)
        assert (code, body["error"]["type"]) == (1, "api_error"), argv
    code, missing = await run(capsys, env, "accounts", "get", "acc_missing")
    assert (code, missing["error"]["type"]) == (1, "not_found_error")


async def test_admin_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin_main(["accounts", "get", "x"], environ={}) == 2
    assert admin_main(["nonsense"], environ={"AIAPI_ADMIN_TOKEN": "t"}) == 2
    unreachable = {
        "AIAPI_ADMIN_TOKEN": "t",
        "AIAPI_ADMIN_URL": f"http://127.0.0.1:{free_port()}",
    }
    assert admin_main(["accounts", "get", "x"], environ=unreachable) == 2
    err = capsys.readouterr().err
    assert "AIAPI_ADMIN_TOKEN" in err
