"""`aiapi admin accounts search|show`, `reports usage` and `live` against a running accounts
process and a real billing: the same answers as the API, the report as CSV on stdout."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime

import pytest
from aiapi_cli.admin import admin_main
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import ADMIN_TOKEN
from tests.accounts.test_console_api import Console, console
from tests.accounts.test_process import ARGV, admin_url, ready_url, service_env
from tests.billing.conftest import usage_event

__all__ = ["console"]


async def test_the_console_commands_print_what_the_api_answers(
    console: Console, spawn: SpawnFn, capsys: pytest.CaptureFixture[str], nats_url: str
) -> None:
    service = service_env(console.database_url, nats_url, free_port())
    service["AIAPI_PAYMENTS_ENABLED"] = "false"
    spawn(ARGV, env=service, health_url=ready_url(service), name="accounts")
    env = {"AIAPI_ADMIN_URL": admin_url(service), "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}

    async def run(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(admin_main, list(argv), environ=env)
        return code, capsys.readouterr().out

    account = await console.accounts.new_account("cli.console@example.com")
    await console.credit(account, "3.00")
    await console.bus.publish_event(
        usage_event(account, request_id="req_0000cli00000", started_at=datetime.now(UTC))
    )
    await console.settled(1)

    code, out = await run("accounts", "search", "req_0000cli00000")
    found = json.loads(out)
    assert code == 0 and [(r["id"], r["matched"]) for r in found["data"]] == [
        (account, ["request_id"])
    ]
    code, out = await run("accounts", "search", "--sort", "balance", "--limit", "1")
    assert code == 0 and len(json.loads(out)["data"]) == 1
    code, out = await run("accounts", "show", account)
    assert code == 0 and json.loads(out)["account"]["email"] == "cli.console@example.com"

    today = datetime.now(UTC).date().isoformat()
    code, out = await run("reports", "usage", "--from", today, "--to", today)
    table = list(csv.reader(io.StringIO(out)))
    assert code == 0 and table[0][:3] == ["day", "requests", "tokens"]
    assert [row[0] for row in table[1:]] == [today, "total"]
    assert table[1][1] == "1"
    code, out = await run("reports", "usage", "--group-by", "account", "--format", "json")
    assert code == 0 and json.loads(out)["data"][0]["email"] == "cli.console@example.com"
    code, out = await run("live")
    assert code == 0 and json.loads(out)["billing"]["window_s"] == 60
    code, out = await run("accounts", "search", "--cursor", "not-a-cursor")
    assert code == 1 and json.loads(out)["error"]["type"] == "invalid_request_error"
