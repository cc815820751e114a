"""Long streams extend their hold in chunks; a refused extension ends the stream at the held
budget with an error event, and the usage generated until then is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiapi_edge.budget import HoldBudget
from aiapi_shared.admission import (
    EXTEND_SUBJECT,
    AdmissionReply,
    HoldExtensionReply,
    HoldExtensionRequest,
)
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import default_catalogue

from .conftest import EdgeEnv
from .support import usage_events

# Haiku on the Basic plan costs 1,500 nano-USD per output token: this hold covers about 20
# (with the input), which the first 20 deltas spend.
SMALL_HOLD = 30_000
# 300 tokens, with a pause after 20 deltas during which the simulator sends a ping every 0.2 s.
LONG_STREAM = "[[tokens: 300]] [[fail: stall after=20 seconds=2]]"


@dataclass
class Extensions:
    """An in-test stand-in for billing's extension handler."""

    grant: bool
    requests: list[HoldExtensionRequest] = field(default_factory=list)
    held: int = SMALL_HOLD

    async def handle(self, data: bytes) -> bytes:
        request = HoldExtensionRequest.model_validate_json(data)
        self.requests.append(request)
        if not self.grant:
            reply = HoldExtensionReply(granted=False, hold_amount=self.held, message="no balance")
        else:
            self.held += request.additional_output_tokens * 1_500
            reply = HoldExtensionReply(granted=True, hold_amount=self.held)
        return reply.model_dump_json().encode()


async def serve_extensions(bus: Bus, grant: bool) -> Extensions:
    extensions = Extensions(grant=grant)
    await bus.serve(EXTEND_SUBJECT, extensions.handle, queue="billing")
    return extensions


def small_hold(env: EdgeEnv) -> None:
    env.billing.reply = AdmissionReply(
        decision="admit", hold_id="hold_small", hold_amount=SMALL_HOLD
    )


async def stream_text(env: EdgeEnv, path: str, body: dict[str, object]) -> str:
    headers = {"x-api-key": env.key, "anthropic-version": "2023-06-01"}
    async with (
        httpx.AsyncClient(base_url=env.proxy_url, timeout=20) as http,
        http.stream("POST", path, content=orjson.dumps(body), headers=headers) as answer,
    ):
        assert answer.status_code == 200
        return (await answer.aread()).decode()


def messages_body() -> dict[str, object]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": LONG_STREAM}],
    }


async def test_a_refused_extension_ends_the_stream_at_the_held_budget(env: EdgeEnv) -> None:
    small_hold(env)
    extensions = await serve_extensions(env.bus, grant=False)
    text = await stream_text(env, "/v1/messages", messages_body())

    assert "event: message_stop" not in text
    last = text.rstrip().rsplit("\n\n", 1)[-1]
    assert last.startswith("event: error\ndata: ")
    error = orjson.loads(last.split("data: ", 1)[1])
    assert error["error"]["type"] == "insufficient_balance"
    # One chunk asked for (a quarter of max_tokens, and what the stream had already spent past
    # the hold), refused once, never asked again.
    (asked,) = extensions.requests
    assert asked.hold_id == "hold_small" and asked.additional_output_tokens >= 1024
    (event,) = await usage_events(env.bus, 1)
    assert event.outcome == "stream_error" and event.hold_id == "hold_small"
    # Metered up to the budget: some output, far from the 300 tokens the upstream would send.
    assert 0 < event.usage.output_tokens < 300
    assert event.usage.input_tokens > 0


async def test_granted_extensions_let_the_stream_finish(env: EdgeEnv) -> None:
    small_hold(env)
    extensions = await serve_extensions(env.bus, grant=True)
    text = await stream_text(env, "/v1/messages", messages_body())

    assert text.rstrip().endswith('data: {"type":"message_stop"}') or (
        "event: message_stop" in text and "event: error" not in text
    )
    assert len(extensions.requests) >= 1
    assert all(r.additional_output_tokens >= 1024 for r in extensions.requests)
    (event,) = await usage_events(env.bus, 1)
    assert event.outcome == "ok" and event.usage.output_tokens == 300


async def test_a_refused_extension_on_the_openai_route_ends_with_an_error_chunk(
    env: EdgeEnv,
) -> None:
    small_hold(env)
    await serve_extensions(env.bus, grant=False)
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": LONG_STREAM}],
    }
    text = await stream_text(env, "/v1/chat/completions", body)
    assert "[DONE]" not in text
    last = orjson.loads(text.rstrip().rsplit("\n\n", 1)[-1].removeprefix("data: "))
    assert last["error"]["type"] == "insufficient_balance"
    (event,) = await usage_events(env.bus, 1)
    assert event.route == "openai" and event.outcome == "stream_error"
    assert 0 < event.usage.output_tokens < 300


@pytest.mark.parametrize("hold", [0])
async def test_a_stream_without_a_known_hold_is_never_cut(env: EdgeEnv, hold: int) -> None:
    env.billing.reply = AdmissionReply(decision="admit", hold_id="hold_unknown", hold_amount=hold)
    extensions = await serve_extensions(env.bus, grant=False)
    text = await stream_text(env, "/v1/messages", messages_body())
    assert "event: message_stop" in text
    assert extensions.requests == []


def haiku_budget(
    held: int, max_tokens: int, discount_bps: int | None = None, **more: Any
) -> HoldBudget:
    """A budget of claude-haiku-4-5 on the Basic plan (0.30 USD/Mtok in, 1.50 out), or at
    another discount."""
    catalogue = default_catalogue()
    haiku = catalogue.model("claude-haiku-4-5")
    assert haiku is not None
    price = haiku.price_at(datetime.now(UTC))
    assert price is not None
    if discount_bps is None:
        discount_bps = catalogue.plan("basic").discount_bps
    return HoldBudget(
        held=held,
        price=price,
        discount_bps=discount_bps,
        multipliers=catalogue.cache_multipliers_bps,
        max_tokens=max_tokens,
        **more,
    )


def test_the_budget_prices_like_billing_and_estimates_output_from_delta_bytes() -> None:
    budget = haiku_budget(2_000_000, 8192)
    assert budget.chunk_tokens == 2048  # a quarter of max_tokens, at least 1,024
    # Basic haiku: 0.30 USD/Mtok in, 1.50 out; a 1-hour cache write costs 2x input.
    usage = {
        "input_tokens": 1000,
        "output_tokens": 1000,
        "cache_creation": {"ephemeral_1h_input_tokens": 1000},
        "cache_creation_input_tokens": 1000,
    }
    assert budget.projected(usage) == 300_000 + 1_500_000 + 600_000
    assert budget.spent(budget.projected(usage))
    # No report yet: 3 bytes of delta text (past the JSON around it) count as one token.
    budget.delta(80 + 3 * 400)
    assert budget.output_tokens(reported=1) == 400
    assert budget.output_tokens(reported=500) == 500
    assert budget.projected({"input_tokens": 1000}) == 300_000 + 600_000
    assert budget.running_low(900_000)  # less than half a chunk (1,024 tokens) left
    assert not budget.running_low(300_000)


def test_a_short_answer_asks_for_no_extension_its_hold_already_covers() -> None:
    # Basic haiku: 1,000 input tokens are 300,000 nano-USD, an output token 1,500. The hold
    # covers the input and all 64 tokens max_tokens allows.
    usage = {"input_tokens": 1000}
    held = 300_000 + 64 * 1500
    budget = haiku_budget(held, 64)
    budget.delta(80 + 3 * 40)  # 40 tokens out so far
    assert not budget.running_low(budget.projected(usage))  # 24 more at most: covered
    long = haiku_budget(held, 8192)
    long.delta(80 + 3 * 40)
    assert long.running_low(long.projected(usage))  # it may run on: half a chunk is not held
    # The input reported larger than estimated: the short answer asks too, once it is over.
    budget.delta(80 + 3 * 24)
    assert budget.running_low(budget.projected({"input_tokens": 1200}))


# Haiku, Basic plan: a search costs 0.01 USD x 30% = 3,000,000 nano-USD. This hold covers the
# tokens and the ten searches a web_search tool without max_uses is held for, not twelve.
SEARCH_HOLD = 35_000_000
SEARCH_NANO = 3_000_000


def searching_body(searches: int, *, stall_in: int) -> dict[str, object]:
    # "[[reply: ok]]" is one delta and each search's empty input one more (after its block's
    # start), so a stall after 1 + (N - 1) deltas stops the stream inside the N-th search.
    stall = f"[[fail: stall after={stall_in} seconds=2]]"
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 1000,
        "stream": True,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {
                "role": "user",
                "content": "[[reply: ok]] " + "[[tool: web_search]] " * searches + stall,
            }
        ],
    }


async def test_server_tools_seen_mid_stream_extend_the_hold(env: EdgeEnv) -> None:
    env.billing.reply = AdmissionReply(
        decision="admit", hold_id="hold_search", hold_amount=SEARCH_HOLD
    )
    extensions = await serve_extensions(env.bus, grant=True)
    text = await stream_text(env, "/v1/messages", searching_body(14, stall_in=12))
    assert "event: message_stop" in text and "event: error" not in text
    # Tokens alone never come near the hold: the searches past the tenth asked for more, enough
    # (at the plain output price billing extends by) for what they had spent past the hold.
    assert extensions.requests
    first = extensions.requests[0]
    assert first.hold_id == "hold_search"
    assert first.additional_output_tokens * 1_500 >= 12 * SEARCH_NANO - SEARCH_HOLD
    (event,) = await usage_events(env.bus, 1)
    assert event.outcome == "ok" and event.usage.web_search_requests == 14


async def test_a_refused_extension_for_server_tools_cuts_the_stream_and_bills_the_searches(
    env: EdgeEnv,
) -> None:
    env.billing.reply = AdmissionReply(
        decision="admit", hold_id="hold_search", hold_amount=SEARCH_HOLD
    )
    extensions = await serve_extensions(env.bus, grant=False)
    text = await stream_text(env, "/v1/messages", searching_body(14, stall_in=12))
    assert "event: message_stop" not in text
    last = text.rstrip().rsplit("\n\n", 1)[-1]
    assert orjson.loads(last.split("data: ", 1)[1])["error"]["type"] == "insufficient_balance"
    assert [r.hold_id for r in extensions.requests] == ["hold_search"]
    (event,) = await usage_events(env.bus, 1)
    # Cut before the upstream's final count: the twelve searches the stream showed are billed.
    assert event.outcome == "stream_error" and event.usage.web_search_requests == 12


def test_the_budget_counts_server_tools_and_premiums_and_asks_for_what_covers_them() -> None:
    budget = haiku_budget(
        10_000_000,
        4096,
        premium=(11_000, 11_000),  # asked for inference_geo "us"
        reported_premium=lambda meters: (10_000, 20_000 if meters.get("speed") else 10_000),
        tool_prices={"web_search_requests": 10_000_000},
    )
    # 1,000 input tokens at 1.1x: 330,000 nano; three searches seen: 9,000,000.
    for _ in range(3):
        budget.server_tool("web_search_requests")
    assert budget.projected({"input_tokens": 1000}) == 330_000 + 9_000_000
    # The upstream's count replaces what was seen when larger.
    reported = {"input_tokens": 1000, "server_tool_use": {"web_search_requests": 4}}
    assert budget.projected(reported) == 330_000 + 12_000_000
    # A premium the usage shows beyond the requested one is priced too (output 2x > 1.1x).
    fast = {"output_tokens": 1000, "speed": "fast"}
    assert budget.projected(fast) == 1_500_000 * 2 + 9_000_000
    # Over the hold by 2,330,000: the extension covers that and a chunk (1,024 tokens) at 1.1x.
    over = budget.projected(reported) - budget.held
    tokens = budget.extension_tokens(budget.projected(reported))
    assert tokens * 1_500 >= over + 1024 * 1_500 * 11_000 // 10_000
    assert (tokens - 1) * 1_500 < over + 1024 * 1_500 * 11_000 // 10_000
    assert budget.running_low(budget.projected(reported))
