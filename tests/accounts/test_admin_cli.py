"""`aiapi admin ...` against a running accounts service: each subcommand calls its operator route
and prints the JSON answer; errors give a non-zero status."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiapi_cli.admin import admin_main
from aiapi_cli.admin_upstream import KeyInputError, read_key
from aiapi_cli.ports import free_port
from aiapi_shared import apikeys
from aiapi_shared.upstream_seal import generate_keypair
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


async def test_the_upstream_keys_commands_call_their_routes(
    database_url: str,
    nats_url: str,
    spawn: SpawnFn,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, public = generate_keypair()
    service = {
        **service_env(database_url, nats_url, free_port()),
        "AIAPI_UPSTREAM_SEAL_PUBLIC_KEY": public,
    }
    spawn(ARGV, env=service, health_url=ready_url(service), name="accounts")
    env = {"AIAPI_ADMIN_URL": admin_url(service), "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}
    key_file = tmp_path / "upstream-key"
    key_file.write_text("sk-ant-from-a-file-5150\n")

    assert await run(capsys, env, "upstream-keys", "list") == (0, {"data": []})
    code, added = await run(
        capsys, env, "upstream-keys", "add", "--key-file", str(key_file),
        "--organization", "acme", "--weight", "4", "--models", "claude-haiku-4-5, m2",
    )  # fmt: skip
    assert code == 0 and added["hint"] == "...5150"
    assert (added["weight"], added["models"]) == (4, ["claude-haiku-4-5", "m2"])
    key_id = added["id"]
    code, changed = await run(capsys, env, "upstream-keys", "set", key_id, "--models", "")
    assert (code, changed["models"]) == (0, [])
    code, off = await run(capsys, env, "upstream-keys", "disable", key_id)
    assert (code, off["enabled"]) == (0, False)
    code, on = await run(capsys, env, "upstream-keys", "enable", key_id)
    assert (code, on["enabled"]) == (0, True)
    code, listed = await run(capsys, env, "upstream-keys", "list")
    assert [entry["id"] for entry in listed["data"]] == [key_id]
    code, tested = await run(capsys, env, "upstream-keys", "test", key_id)  # no edge runs
    assert (code, tested["error"]["type"]) == (1, "api_error")
    assert await run(capsys, env, "upstream-keys", "remove", key_id) == (0, {"status": 204})
    assert "sk-ant-from-a-file-5150" not in capsys.readouterr().out


def test_the_upstream_key_is_read_from_standard_input_never_the_command_line() -> None:
    assert read_key(None, io.StringIO("sk-ant-pasted-0001\n")) == "sk-ant-pasted-0001"
    with pytest.raises(KeyInputError):
        read_key(None, io.StringIO("\n"))
    with pytest.raises(KeyInputError):
        read_key("/nonexistent/key-file")
    # There is no option that takes the key itself (nor an abbreviation of --key-file).
    token = {"AIAPI_ADMIN_TOKEN": "t"}
    assert admin_main(["upstream-keys", "add", "--key", "sk-ant-x"], environ=token) == 2
