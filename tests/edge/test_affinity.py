"""Prompt caching that survives the pool: a conversation stays on its organisation's keys while
they are healthy, and a key leaving the pool moves only its own share (rendezvous hashing)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import orjson
import pytest
from aiapi_edge.affinity import conversation_of, organisation_of, ranking
from aiapi_edge.pool import UpstreamPool
from aiapi_edge.settings import EdgeSettings, UpstreamKey

from .conftest import EdgeEnv
from .support import sim_post, sim_requests

A1, A2, B1 = "sk-ant-affinity-a111", "sk-ant-affinity-a222", "sk-ant-affinity-b111"
POOL = f"acme={A1}, acme={A2}, bolt=http://127.0.0.1:9|{B1}"


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    return {"upstream_api_keys": f"acme={A1},acme={A2},bolt={B1}"}


def test_the_pool_setting_takes_an_organisation_label_per_key() -> None:
    keys = EdgeSettings(upstream_api_keys=POOL).upstream_keys()  # type: ignore[arg-type]
    assert [(k.organisation, k.api_key) for k in keys] == [("acme", A1), ("acme", A2), ("bolt", B1)]
    assert keys[2].base_url == "http://127.0.0.1:9"
    plain = EdgeSettings(upstream_api_keys="https://eu.example|sk-x").upstream_keys()  # type: ignore[arg-type]
    assert plain[0].organisation == "" and plain[0].base_url == "https://eu.example"
    assert organisation_of(keys[0]) == organisation_of(keys[1]) != organisation_of(keys[2])


def test_a_key_leaving_moves_only_the_conversations_it_served() -> None:
    keys = [UpstreamKey("http://u", f"sk-ant-key-{i:04d}") for i in range(5)]
    conversations = [f"acct|session|{i}" for i in range(2000)]
    before = {c: ranking(c, keys)[0] for c in conversations}
    pool = UpstreamPool(keys)
    pool.record(3, "key_rejected")
    after = {c: pool.acquire(set(), conversation=c) for c in conversations}
    moved = {c for c in conversations if after[c] != before[c]}
    assert moved == {c for c in conversations if before[c] == 3}
    assert 250 < len(moved) < 550  # about a fifth: the share is spread, not concentrated
    assert 3 not in after.values()


def test_the_conversation_is_the_session_header_then_the_user_then_the_key() -> None:
    session = [(b"X-Claude-Code-Session-Id", b"5f0c-session")]
    body = {"metadata": {"user_id": "user_42"}}
    assert conversation_of(session, body, "acct", "key") == "acct|session|5f0c-session"
    assert conversation_of([], body, "acct", "key") == "acct|user|user_42"
    assert conversation_of([], {}, "acct", "key_9") == "acct|key|key_9"


def _session_ranking_first(account_id: str, wanted: str) -> str:
    """A session id whose conversation ranks the key ``wanted`` first."""
    keys = EdgeSettings(upstream_api_keys=f"acme={A1},acme={A2},bolt={B1}").upstream_keys()  # type: ignore[arg-type]
    rng = random.Random(7)
    while True:
        session = f"session-{rng.getrandbits(64):016x}"
        conversation = conversation_of([(b"x-claude-code-session-id", session.encode())], None,
                                       account_id, "")  # fmt: skip
        if keys[ranking(conversation, keys)[0]].api_key == wanted:
            return session


async def _turns(env: EdgeEnv, session: str, count: int) -> list[str]:
    """The keys the upstream saw during ``count`` turns (a refused attempt included)."""
    seen = len(sim_requests(env.sim_url))
    async with httpx.AsyncClient(timeout=10) as http:
        for turn in range(count):
            answer = await http.post(
                env.url + "/v1/messages",
                content=orjson.dumps(
                    {
                        "model": "claude-haiku-4-5",
                        "max_tokens": 20,
                        "messages": [{"role": "user", "content": f"turn {turn}"}],
                    }
                ),
                headers={
                    "x-api-key": env.key,
                    "anthropic-version": "2023-06-01",
                    "x-claude-code-session-id": session,
                },
            )
            assert answer.status_code == 200, answer.text
    used = []
    for request in sim_requests(env.sim_url)[seen:]:
        headers = {k.lower(): v for k, v in request["headers"]}
        used.append(headers["x-api-key"])
    return used


async def _turns_after_disabling(env: EdgeEnv, session: str, key: str) -> list[str]:
    """Ten turns after the upstream answers ``key``'s next request with a 401 (disabling it)."""
    sim_post(env.sim_url, "/_sim/faults", {"fault": "401", "count": 1, "api_key": key})
    return await _turns(env, session, 10)


async def test_ten_turns_stay_on_one_organisation_and_move_when_its_keys_leave(
    env: EdgeEnv,
) -> None:
    session = _session_ranking_first(env.account_id, A1)
    assert await _turns(env, session, 10) == [A1] * 10
    # A1 is disabled (a 401): the conversation moves to the other key of its organisation.
    assert await _turns_after_disabling(env, session, A1) == [A1] + [A2] * 10
    # A2 too: only now does it leave the organisation.
    assert await _turns_after_disabling(env, session, A2) == [A2] + [B1] * 10


async def test_a_conversation_on_a_single_key_organisation_moves_when_that_key_is_disabled(
    env: EdgeEnv,
) -> None:
    session = _session_ranking_first(env.account_id, B1)
    assert await _turns(env, session, 10) == [B1] * 10
    moved = await _turns_after_disabling(env, session, B1)
    assert moved[0] == B1 and len(set(moved[1:])) == 1 and moved[1] in (A1, A2)
    assert len(moved) == 11
