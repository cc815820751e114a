"""An overloaded upstream (529) is waited out within the request's budget, never blamed on a key."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import EdgeEnv
from .support import sim_requests, usage_events
from .test_pool import KEY_A, KEY_B, arm, body, count_body, key_health, keys_used, post

BUDGET_S = 2.0


@pytest.fixture
def edge_settings_override() -> dict[str, Any]:
    # Round-robin: with conversation affinity a retry stays on the conversation's key.
    return {
        "upstream_api_keys": f"{KEY_A},{KEY_B}",
        "edge_overload_retry_s": BUDGET_S,
        "edge_key_affinity": False,
    }


async def test_a_burst_of_529s_is_waited_out_and_rests_no_key(env: EdgeEnv) -> None:
    arm(env, "529", count=2)
    answer = await post(env, body())
    assert answer.status_code == 200, answer.text
    assert len(keys_used(env)) == 3  # two 529s, then the answer
    assert key_health(env) == {"healthy": 2}
    [event] = await usage_events(env.bus, 1)
    assert (event.outcome, event.status_code) == ("ok", 200)


async def test_count_tokens_waits_out_a_529_too(env: EdgeEnv) -> None:
    arm(env, "529", count=2, route="count_tokens")
    answer = await post(env, count_body(), path="/v1/messages/count_tokens")
    assert answer.status_code == 200, answer.text
    assert len(keys_used(env, "/v1/messages/count_tokens")) == 3


async def test_a_persistent_529_reaches_the_client_once_the_budget_is_spent(env: EdgeEnv) -> None:
    arm(env, "529", count=1000)
    answer = await post(env, body())
    assert answer.status_code == 529
    assert answer.json()["error"]["type"] == "overloaded_error"
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    # Retried with growing waits (at least 0.125 + 0.25 + 0.5 s fit in the budget) on both keys.
    used = keys_used(env)
    assert len(used) >= 4 and set(used) == {KEY_A, KEY_B}
    assert key_health(env) == {"healthy": 2}
    [event] = await usage_events(env.bus, 1)
    assert (event.outcome, event.status_code) == ("upstream_error", 529)


async def test_a_529_asking_for_more_than_the_budget_is_passed_on_at_once(env: EdgeEnv) -> None:
    arm(env, "529", count=5, retry_after=20)
    answer = await post(env, body())
    assert answer.status_code == 529
    assert answer.headers["retry-after"] == "20"
    assert len(sim_requests(env.sim_url)) == 1
    assert key_health(env) == {"healthy": 2}


async def test_a_529_within_the_budget_is_waited_for_as_asked(env: EdgeEnv) -> None:
    arm(env, "529", count=1, retry_after=1)
    answer = await post(env, body())
    assert answer.status_code == 200, answer.text
    assert len(keys_used(env)) == 2
    assert key_health(env) == {"healthy": 2}


async def test_every_key_resting_briefly_is_waited_for(env: EdgeEnv) -> None:
    """Both keys rest 1 s (429): the request waits for the first one back instead of a 529."""
    arm(env, "429", count=2, retry_after=1)
    answer = await post(env, body())
    assert answer.status_code == 200, answer.text
    assert len(keys_used(env)) == 3
