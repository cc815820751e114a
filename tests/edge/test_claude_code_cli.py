"""The real Claude Code CLI (npm ``@anthropic-ai/claude-code``) against the edge, with its default
settings (no ``--model``, no model variables): the operator's recommended pattern aliases
(docs/operations.md) are all it needs.

Claude Code ships as a native binary in a per-platform npm package; npm 11 no longer runs the
wrapper's postinstall that would copy it into place, so the test runs the platform package's
binary directly. It is installed into ``.tools/claude-code`` on first use (``AIAPI_TEST_CLAUDE``
may name a ``claude`` binary instead) and runs in print mode (``claude -p``) with a temporary
home, the gateway as ``ANTHROPIC_BASE_URL`` and the customer key as ``ANTHROPIC_API_KEY``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiapi_shared.catalogue import Catalogue, default_catalogue
from aiapi_testkit.npm import npm_install

from .conftest import EdgeEnv
from .support import billed_once, sim_requests

CLAUDE_VERSION = "2.1.332"
TOOLS = Path(__file__).resolve().parents[2] / ".tools"
_RUN_TIMEOUT_S = 180

# What docs/operations.md tells the operator to set so that Claude Code's defaults work.
RECOMMENDED_ALIASES = {
    "claude-opus-*": "claude-opus-4-7",
    "claude-sonnet-*": "claude-sonnet-4-6",
    "claude-haiku-*": "claude-haiku-4-5",
}


@pytest.fixture
def edge_catalogue() -> Catalogue:
    shipped = default_catalogue()
    return shipped.model_copy(update={"aliases": {**shipped.aliases, **RECOMMENDED_ALIASES}})


def _platform_package() -> str:
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
    return f"@anthropic-ai/claude-code-linux-{machine[platform.machine().lower()]}"


@pytest.fixture(scope="session")
def claude() -> Path:
    override = os.environ.get("AIAPI_TEST_CLAUDE")
    if override:
        return Path(override)
    prefix = TOOLS / "claude-code"
    binary = prefix / "node_modules" / _platform_package() / "claude"
    return npm_install(f"@anthropic-ai/claude-code@{CLAUDE_VERSION}", prefix, binary)


async def run_claude(
    claude: Path, env: EdgeEnv, tmp_path: Path, prompt: str, *options: str
) -> dict[str, Any]:
    """``claude -p PROMPT --output-format json`` against the gateway; returns its result."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    process = await asyncio.create_subprocess_exec(
        str(claude),
        "-p",
        prompt,
        "--output-format",
        "json",
        *options,
        cwd=work,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": f"{env.url}/api/proxy",
            "ANTHROPIC_API_KEY": env.key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), _RUN_TIMEOUT_S)
    assert process.returncode == 0, (out.decode()[-3000:], err.decode()[-3000:])
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_claude_code_with_its_default_models_answers_and_every_request_is_billed(
    claude: Path, env: EdgeEnv, tmp_path: Path
) -> None:
    result = await run_claude(claude, env, tmp_path, "Say hi [[reply: Hi from Claude.]]")
    assert (result["subtype"], result["is_error"], result["result"]) == (
        "success",
        False,
        "Hi from Claude.",
    )
    sent = [orjson.loads(r["raw"]) for r in sim_requests(env.sim_url)]
    assert sent, "Claude Code reached the upstream"
    # Claude Code asked for its own default ids (none of which the catalogue sells by that name):
    # the aliases served each as a sold model, which is what the upstream saw and what is billed.
    sold = {m.id for m in default_catalogue().models}
    assert {body["model"] for body in sent} <= sold
    recorded = await billed_once(env.bus, env.billing)
    assert len(recorded) == len(sent)
    # Nothing was refused on the way (Claude Code retries a 400 with fewer features).
    assert all(e.outcome == "ok" and e.model in sold for e in recorded), recorded
    assert {e.requested_model for e in recorded}.isdisjoint(sold), "it sent its own default ids"
    # What Claude Code counted for the turn is what the usage events carry.
    assert result["usage"]["output_tokens"] == sum(e.usage.output_tokens for e in recorded)


async def test_claude_code_runs_a_tool_and_sends_its_output_back(
    claude: Path, env: EdgeEnv, tmp_path: Path
) -> None:
    prompt = 'Run it [[tool: Bash {"command": "echo cc-tool-ran", "description": "Echo"}]]'
    result = await run_claude(claude, env, tmp_path, prompt, "--allowedTools", "Bash(echo:*)")
    assert result["subtype"] == "success" and result["num_turns"] >= 2, result
    bodies = [orjson.loads(r["raw"]) for r in sim_requests(env.sim_url)]
    tool_results = [
        block
        for body in bodies
        for message in body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert tool_results and "cc-tool-ran" in json.dumps(tool_results[-1]["content"])
    recorded = await billed_once(env.bus, env.billing)
    assert len(recorded) == len(bodies) and all(e.outcome == "ok" for e in recorded)
