"""A stream's hold guard decides most chunks by comparing its delta bytes with a bound solved
once (``HoldBudget.surely_within``) instead of pricing the projection each chunk. The shortcut
must never hide a decision: whenever it says "within", the full projection is neither running
low nor spent, so the guard asks for an extension and cuts a stream exactly when it did."""

from __future__ import annotations

from aiapi_edge.budget import HoldBudget
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_hold_extension import haiku_budget


def budget(held: int, max_tokens: int, discount_bps: int, premium: tuple[int, int]) -> HoldBudget:
    tools = {"web_search_requests": 10_000_000}
    return haiku_budget(held, max_tokens, discount_bps, premium=premium, tool_prices=tools)


_step = st.one_of(
    st.tuples(st.just("delta"), st.integers(0, 4000)),
    st.tuples(st.just("tool"), st.just(0)),
    st.tuples(st.just("report"), st.integers(0, 20_000)),
    st.tuples(st.just("extend"), st.integers(0, 5_000_000)),
)


@settings(max_examples=300, deadline=None)
@given(
    held=st.integers(0, 20_000_000),
    max_tokens=st.integers(0, 40_000),
    discount_bps=st.integers(0, 10_000),
    premium=st.tuples(st.integers(10_000, 20_000), st.integers(10_000, 20_000)),
    input_tokens=st.integers(0, 200_000),
    cache_write=st.integers(0, 50_000),
    steps=st.lists(_step, max_size=60),
)
def test_within_means_neither_running_low_nor_spent(
    held: int,
    max_tokens: int,
    discount_bps: int,
    premium: tuple[int, int],
    input_tokens: int,
    cache_write: int,
    steps: list[tuple[str, int]],
) -> None:
    guarded = budget(held, max_tokens, discount_bps, premium)
    usage: dict[str, object] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
    }
    for kind, value in steps:
        if kind == "delta":
            guarded.delta(value)
        elif kind == "tool":
            guarded.server_tool("web_search_requests")
        elif kind == "report":  # a new usage object, as the meter makes one per report
            usage = {**usage, "output_tokens": value}
        else:
            guarded.held += value
        if guarded.surely_within(usage):
            projected = guarded.projected(usage)
            assert not guarded.running_low(projected)
            assert not guarded.spent(projected)


def test_a_long_stream_is_priced_only_near_its_hold() -> None:
    """200-byte deltas (40 tokens each past the JSON around them) against a hold of about 3,000
    output tokens: the shortcut answers until the projection comes within half a chunk of the
    hold, and the guard's decision turns exactly where the full projection's does."""
    usage = {"input_tokens": 1000}
    guarded = budget(0, 8192, 0, (10_000, 10_000))
    guarded.held = guarded.cost({"input_tokens": 1000, "output_tokens": 3000})
    within = low = 0
    first_low = first_not_within = None
    for index in range(200):
        guarded.delta(200)
        running_low = guarded.running_low(guarded.projected(usage))
        if guarded.surely_within(usage):
            within += 1
            assert not running_low
        elif first_not_within is None:
            first_not_within = index
        if running_low:
            low += 1
            first_low = index if first_low is None else first_low
    assert first_low is not None and first_not_within is not None
    # Half a chunk is 1,024 tokens, about 25 deltas: the guard is priced from there on only.
    assert first_not_within <= first_low < first_not_within + 2
    assert within > 40 and low > 100
