"""A placeholder or guessable operator token is refused at start: exit 2, the setting named, the
value never echoed (issue 11 item 7)."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
from aiapi_cli.ports import free_port
from aiapi_shared.secret_strength import weakness

WEAK = [
    "changeme",
    "admin",
    "secret",
    "change-me-to-a-long-random-string",  # deploy/env.example's placeholder
    "Password-Password-Password-1",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababababab",
    "0123456789abcde",  # random enough, but short
]


@pytest.mark.parametrize("token", WEAK)
def test_weak_tokens_are_named_weak_without_repeating_them(token: str) -> None:
    reason = weakness(token)
    assert reason is not None
    assert token not in reason


@pytest.mark.parametrize(
    "token",
    [secrets.token_hex(32), secrets.token_urlsafe(24), "aiapi-admin-" + secrets.token_urlsafe(24)],
)
def test_generated_tokens_pass(token: str) -> None:
    assert weakness(token) is None


@pytest.mark.parametrize("token", ["changeme", "change-me-to-a-long-random-string"])
def test_the_service_refuses_to_start_with_a_placeholder_token(
    database_url: str, token: str
) -> None:
    env = {
        "AIAPI_DATABASE_URL": database_url,
        "AIAPI_NATS_URL": "nats://127.0.0.1:1",
        "AIAPI_ACCOUNTS_PORT": str(free_port()),
        "AIAPI_ADMIN_TOKEN": token,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "aiapi_accounts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "admin_token" in done.stderr.lower()
    assert token not in done.stderr + done.stdout
