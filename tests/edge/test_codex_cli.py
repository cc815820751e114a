"""The real Codex CLI (npm ``@openai/codex``) against the edge's Responses API, the simulator upstream.

Codex is installed into ``.tools/codex`` on first use (``AIAPI_TEST_CODEX`` may name a codex
binary instead) and configured as its docs say for a custom provider: ``model_providers.<name>``
with ``base_url`` (the gateway's OpenAI base), ``env_key`` (the variable holding the customer's
key) and ``wire_api = "responses"``, in a ``config.toml`` of a temporary ``CODEX_HOME``. It runs
non-interactively (``codex exec --json``); the prompt carries simulator directives that choose
the model's answer, so Codex's real tool loop (exec_command, then the tool's output sent back)
runs against the gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiapi_simulator.thinking import sign_thinking
from aiapi_testkit.npm import npm_install

from .conftest import EdgeEnv
from .support import billed_once, sim_requests

CODEX_PACKAGE = "@openai/codex@0.171.0"
TOOLS = Path(__file__).resolve().parents[2] / ".tools"
_RUN_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def codex() -> Path:
    override = os.environ.get("AIAPI_TEST_CODEX")
    if override:
        return Path(override)
    prefix = TOOLS / "codex"
    return npm_install(CODEX_PACKAGE, prefix, prefix / "node_modules" / ".bin" / "codex")


async def run_codex(
    codex: Path, env: EdgeEnv, tmp_path: Path, prompt: str, *, effort: str | None = None
) -> list[dict[str, Any]]:
    """``codex exec --json`` with the gateway as its provider; returns Codex's JSON events."""
    home = tmp_path / "codex-home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    config = [
        'model = "claude-haiku-4-5"',
        'model_provider = "aiapi"',
        "check_for_update_on_startup = false",
        *([f'model_reasoning_effort = "{effort}"'] if effort else []),
        "[analytics]",
        "enabled = false",
        "[model_providers.aiapi]",
        'name = "aiapi"',
        f'base_url = "{env.url}/api/proxy/v1"',
        'env_key = "AIAPI_KEY"',
        'wire_api = "responses"',
    ]
    (home / "config.toml").write_text("\n".join(config) + "\n")
    process = await asyncio.create_subprocess_exec(
        str(codex),
        "exec",
        "--skip-git-repo-check",
        "--json",
        prompt,
        cwd=work,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "CODEX_HOME": str(home),
            "AIAPI_KEY": env.key,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Awaited, not blocking: the in-test billing answers admission on this event loop.
    out, err = await asyncio.wait_for(process.communicate(), _RUN_TIMEOUT_S)
    assert process.returncode == 0, (out.decode()[-3000:], err.decode()[-3000:])
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


def items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind
    ]


def turn_usage(events: list[dict[str, Any]]) -> dict[str, Any]:
    [done] = [e for e in events if e["type"] == "turn.completed"]
    usage: dict[str, Any] = done["usage"]
    return usage


async def test_codex_answers_a_prompt_and_the_request_is_billed(
    codex: Path, env: EdgeEnv, tmp_path: Path
) -> None:
    events = await run_codex(codex, env, tmp_path, "Say hi [[reply: Hi from Claude.]]")
    assert [m["text"] for m in items(events, "agent_message")] == ["Hi from Claude."]
    [request] = sim_requests(env.sim_url)
    body = orjson.loads(request["raw"])
    assert body["stream"] is True and body["model"] == "claude-haiku-4-5"
    assert body["system"][0]["text"].startswith("You are a coding agent running in the Codex CLI")
    # web_search, which Codex offers by default, is not offered upstream; its functions are.
    assert "exec_command" in [t["name"] for t in body["tools"]]
    assert "web_search" not in [t["name"] for t in body["tools"]]
    [event] = await billed_once(env.bus, env.billing)
    assert (event.route, event.outcome, event.status_code) == ("responses", "ok", 200)
    usage = turn_usage(events)  # what Codex read from response.completed is what is billed
    assert usage["input_tokens"] == event.usage.input_tokens
    assert usage["output_tokens"] == event.usage.output_tokens == 4


async def test_codex_runs_a_tool_call_with_thinking_and_each_request_is_billed(
    codex: Path, env: EdgeEnv, tmp_path: Path
) -> None:
    prompt = 'Run it [[thinking: Run the command.]] [[tool: exec_command {"cmd": "echo codex-tool-ran"}]]'
    events = await run_codex(codex, env, tmp_path, prompt, effort="low")
    [command] = items(events, "command_execution")
    assert command["exit_code"] == 0 and "codex-tool-ran" in command["aggregated_output"]
    assert "Run the command." in [r["text"] for r in items(events, "reasoning")]
    first, second = (orjson.loads(r["raw"]) for r in sim_requests(env.sim_url))
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    # The second request sends back the thinking block, byte-identical, then the tool's output.
    thinking = {
        "type": "thinking",
        "thinking": "Run the command.",
        "signature": sign_thinking("Run the command."),
    }
    assistant, tool_turn = second["messages"][-2:]
    assert assistant["content"][0] == thinking
    assert orjson.dumps(thinking) in sim_requests(env.sim_url)[-1]["raw"]
    [tool_use] = [b for b in assistant["content"] if b["type"] == "tool_use"]
    assert tool_use["name"] == "exec_command"
    assert tool_use["input"] == {"cmd": "echo codex-tool-ran"}
    [result] = tool_turn["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == tool_use["id"]
    assert "codex-tool-ran" in str(result["content"])
    # One usage event per upstream request, all billed; together what Codex counted.
    recorded = await billed_once(env.bus, env.billing)
    assert [(e.route, e.outcome) for e in recorded] == [("responses", "ok")] * 2
    usage = turn_usage(events)
    assert usage["input_tokens"] == sum(e.usage.input_tokens for e in recorded)
    assert usage["output_tokens"] == sum(e.usage.output_tokens for e in recorded)
