"""`aiapi up` brings up the whole system, the official SDK gets answers, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import pytest
from aiapi_cli.ports import free_port
from aiapi_shared.bus import Bus, BusUnavailable

pytestmark = pytest.mark.slow
RUNTIME_KEY = "sk-ant-added-at-runtime-0001"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; it is gone once its parent reaped it.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("aiapi up did not get ready:\n" + "".join(seen))


def test_up_serves_the_sdk_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    closer = contextlib.ExitStack()
    env = {
        **os.environ,
        "AIAPI_DATA_DIR": str(tmp_path / "data"),
        "AIAPI_EDGE_PORT": str(free_port()),
        "AIAPI_ACCOUNTS_PORT": str(free_port()),
        "AIAPI_ADMIN_PORT": str(free_port()),
    }
    for name in ("AIAPI_NATS_URL", "AIAPI_DATABASE_URL", "AIAPI_UPSTREAM_API_KEYS"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiapi_cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until(proc, "Ctrl-C stops everything", timeout_s=180)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", output)]
        assert len(pids) == 7, output  # NATS, PostgreSQL, simulator and the four services
        assert "BUILT-IN SIMULATOR" in output
        assert re.search(r"Edge workers\s+\d+", output), output
        edge = re.search(r"Anthropic SDKs, Claude Code\s+base URL: (\S+)", output)
        key = re.search(r"Demo key \([0-9.]+ USD\)\s+(sk-cc-\S+)", output)
        simulator = re.search(r"Upstream simulator\s+(\S+)", output)
        assert edge and key and simulator, output
        operator = f"http://127.0.0.1:{env['AIAPI_ADMIN_PORT']}"
        assert f"Operator API                 {operator}/admin/v1" in output
        assert f"Operator console             {operator}/admin/" in output

        direct = closer.enter_context(
            anthropic.Anthropic(base_url=simulator.group(1), api_key="sk-ant-any")
        )
        message = direct.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "[[reply: hello from the simulator]]"}],
        )
        assert message.content[0].text == "hello from the simulator"  # type: ignore[union-attr]

        client = closer.enter_context(
            anthropic.Anthropic(base_url=edge.group(1), api_key=key.group(1), max_retries=0)
        )
        request = {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "[[reply: hello through the edge]]"}],
        }
        plain = client.messages.create(**request)  # type: ignore[call-overload]
        with client.messages.stream(**request) as stream:  # type: ignore[arg-type]
            streamed = stream.get_final_message()
        assert plain.content[0].text == "hello through the edge"
        assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in plain.content]
        assert streamed.usage.output_tokens == plain.usage.output_tokens
        # The pool takes a key at runtime: `aiapi up` made the seal, accounts seals, the edge opens.
        token = re.search(r"Operator token\s+(\S+)", output)
        assert token, output
        added = httpx.post(
            f"{operator}/admin/v1/upstream-keys",
            json={"key": RUNTIME_KEY, "weight": 1000},
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=10,
        )
        assert added.status_code == 201, added.text

        def runtime_key_used() -> bool:
            client.messages.create(**request)  # type: ignore[call-overload]
            seen = httpx.get(simulator.group(1) + "/_sim/requests", timeout=10).json()["data"]
            return any(["x-api-key", RUNTIME_KEY] in entry["headers"] for entry in seen)

        deadline = time.monotonic() + 10
        while not runtime_key_used():
            assert time.monotonic() < deadline, "the key added at runtime never served"
        # Its NATS takes no anonymous client, and refused none of the services' own users.
        nats_url = re.search(r"started embedded NATS at (\S+)", output)
        assert nats_url, output
        assert not _anonymous_connects(nats_url.group(1))
    finally:
        closer.close()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    assert "aiapi: stopped" in rest
    deadline = time.monotonic() + 10
    while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _pid_alive(pid)] == []
    nats_log = (tmp_path / "data" / "nats" / "nats-server.log").read_text()
    assert "Violation" not in nats_log
    logs = "".join(p.read_text() for p in (tmp_path / "data" / "logs").glob("*.log"))
    assert logs and RUNTIME_KEY not in logs and RUNTIME_KEY not in rest
    secrets_dir = tmp_path / "data" / "secrets"
    assert {f.stat().st_mode & 0o777 for f in secrets_dir.iterdir()} == {0o600}


def _anonymous_connects(url: str) -> bool:
    async def attempt() -> bool:
        try:
            bus = await Bus.connect(url, name="anonymous")
        except BusUnavailable:
            return False
        await bus.close()
        return True

    return asyncio.run(asyncio.wait_for(attempt(), 20))
