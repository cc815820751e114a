"""`aiapi admin operators|tokens|audit|whoami` against a running accounts service: the bootstrap
token makes an admin (with a console password from stdin) and a support operator; the support
token reads through the CLI and its writes are refused; `--reason` lands in the audit log."""

from __future__ import annotations

import json

import pytest
from aiapi_cli.ports import free_port
from aiapi_testkit.plugin import SpawnFn

from tests.accounts.conftest import ADMIN_TOKEN
from tests.accounts.test_admin_cli import run
from tests.accounts.test_process import ARGV, admin_url, ready_url, service_env

CONSOLE_PASSWORD = "a console password from stdin"


async def test_operators_tokens_and_the_audit_log_from_the_cli(
    database_url: str, nats_url: str, spawn: SpawnFn, capsys: pytest.CaptureFixture[str]
) -> None:
    service = service_env(database_url, nats_url, free_port())
    spawn(ARGV, env=service, health_url=ready_url(service), name="accounts")
    url = admin_url(service)
    boot = {"AIAPI_ADMIN_URL": url, "AIAPI_ADMIN_TOKEN": ADMIN_TOKEN}

    code, ada = await run(
        capsys, boot, "operators", "create", "--name", "Ada", "--email", "ada@ops.example",
        "--role", "admin", "--password-stdin", "--reason", "first admin",
        stdin=CONSOLE_PASSWORD + "\n",
    )  # fmt: skip
    assert (code, ada["role"], ada["console"]) == (0, "admin", True)
    code, issued = await run(capsys, boot, "tokens", "create", ada["id"], "--name", "laptop")
    assert code == 0
    as_ada = {"AIAPI_ADMIN_URL": url, "AIAPI_ADMIN_TOKEN": issued["token"]}
    code, me = await run(capsys, as_ada, "whoami")
    assert (code, me["operator"]["name"], me["via"]) == (0, "Ada", "token")

    code, sam = await run(
        capsys, as_ada, "operators", "create", "--name", "Sam", "--email", "sam@ops.example",
        "--role", "support",
    )  # fmt: skip
    assert code == 0
    code, sam_token = await run(capsys, as_ada, "tokens", "create", sam["id"], "--name", "desk")
    as_sam = {"AIAPI_ADMIN_URL": url, "AIAPI_ADMIN_TOKEN": sam_token["token"]}
    # Support reads through the CLI...
    code, listed = await run(capsys, as_sam, "operators", "list")
    assert (code, [o["name"] for o in listed["data"]]) == (0, ["Ada", "Sam"])
    code, tokens = await run(capsys, as_sam, "tokens", "list", sam["id"])
    assert (code, len(tokens["data"])) == (0, 1)
    # ...and every write it tries is refused.
    for argv in (
        ("accounts", "create", "--email", "x@example.com"),
        ("operators", "disable", ada["id"]),
        ("tokens", "revoke", sam["id"], tokens["data"][0]["id"]),
    ):
        code, refused = await run(capsys, as_sam, *argv)
        assert (code, refused["error"]["type"]) == (1, "permission_error"), argv

    code, _ = await run(
        capsys, as_ada, "operators", "disable", sam["id"], "--reason", "left the team (été)"
    )
    assert code == 0
    code, dead = await run(capsys, as_sam, "whoami")
    assert (code, dead["error"]["type"]) == (1, "authentication_error")

    code, log = await run(capsys, as_ada, "audit", "--operator", "Ada", "--limit", "2")
    assert code == 0
    assert [(e["method"], e["route"], e["reason"]) for e in log["data"]] == [
        ("PATCH", "/admin/v1/operators/{operator_id}", "left the team (été)"),
        ("POST", "/admin/v1/operators/{operator_id}/tokens", None),
    ]
    assert log["next_cursor"]
    code, older = await run(
        capsys, as_ada, "audit", "--operator", "Ada", "--cursor", log["next_cursor"]
    )
    assert [e["route"] for e in older["data"]] == ["/admin/v1/operators"]
    code, refused = await run(capsys, as_ada, "audit", "--operator", "Sam")
    assert [e["status"] for e in refused["data"]] == [403, 403, 403]
    code, first = await run(capsys, boot, "audit", "--operator", "bootstrap")
    assert [e["reason"] for e in first["data"]] == [None, "first admin"]
    assert CONSOLE_PASSWORD not in json.dumps(first)
