"""The overspend bound (docs/billing.md), as a property over random request mixes.

Holds are taken as the edge and billing take them: the input estimated per content block, server
tools at their worst case, the long-context and region premiums the request asks for (or its
estimate reaches); streams extend their hold through the edge's own :class:`HoldBudget` (tokens,
the server tools seen mid-stream, the premiums), each extension granted only when the account's
available balance covers it, and a stream whose extension was refused is cut where the budget
ends it. An account admitted only while its available balance covers the hold never ends below
minus the documented excesses of the requests it had in flight together.

Each request's documented excess is computed from what the upstream reported beyond the
envelope the estimate foresees: text denser than four bytes a token (and the long-context
premium when that unforeseen input carries the request over the threshold), searches past the
tool's bound on a non-streaming request, a region the upstream reports that the request did not
ask for (a workspace default), and for a stream cut at its hold what one step of the stream
carried past it (one search, one delta's output). The first test checks that a request costs at
most its hold plus that excess; the second that a mix stays within the sum in flight.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiapi_billing.pricing import extension_nano, hold_nano
from aiapi_edge.budget import HoldBudget
from aiapi_edge.estimate import (
    IMAGE_MAX_TOKENS,
    PDF_PAGE_TOKENS,
    UNBOUNDED_TOOL_USES,
    estimate_input,
    hold_premium,
    server_tool_prices,
    server_tools_worst,
)
from aiapi_shared.catalogue import PricePoint, default_catalogue
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.pricing import BPS, Price, discounted, premium_bps, request_cost
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CATALOGUE = default_catalogue()
PRICE = Price(1, "claude-sonnet-4-6", datetime(2026, 1, 1, tzinfo=UTC), 3 * 10**9, 15 * 10**9)
POINT = PricePoint(
    effective_from=PRICE.effective_from,
    input_usd_per_mtok=PRICE.input_nano_per_mtok,
    output_usd_per_mtok=PRICE.output_nano_per_mtok,
)
DISCOUNT = 7000
THRESHOLD = 200_000
SEARCH = int(CATALOGUE.meters["web_search_requests"][0].usd_per_unit)
DELTA_TOKENS = 40  # output tokens one stream delta carries at most here
DELTA_OVERHEAD = 80  # the JSON around a delta's text (the budget's DELTA_OVERHEAD_BYTES)


def png(width: int, height: int) -> str:
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    return base64.b64encode(head + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)).decode()


def pdf(pages: int) -> str:
    body = b"%PDF-1.7\n" + b"".join(
        b"%d 0 obj << /Type /Page /Parent 1 0 R >> endobj\n" % i for i in range(pages)
    )
    return base64.b64encode(body).decode()


def cost(usage: Usage, window: int) -> int:
    return request_cost(
        usage,
        PRICE,
        catalogue=CATALOGUE,
        discount_bps=DISCOUNT,
        moment=NOW,
        context_window=window,
    ).cost


@dataclass(frozen=True)
class Request:
    body: dict[str, object]
    window: int  # the model's context window (1M: long context may apply)
    usage: Usage  # what the upstream reports for the whole answer
    static_excess: int  # the documented excess of the answer as reported (see the module)
    stream: bool = False
    steps: tuple[str, ...] = ()  # a stream's order of events: "search" or "delta"
    cut_after: int | None = None  # the client leaves after this many steps


@st.composite
def requests(draw: st.DrawFn) -> Request:
    text = draw(st.text(min_size=1, max_size=400))
    images = draw(st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 3000)), max_size=3))
    urls = draw(st.integers(0, 2))
    window = draw(st.sampled_from([200_000, 1_000_000]))
    # Large PDFs carry a 1M-window request over the long-context threshold.
    pdfs = draw(st.lists(st.integers(1, 80 if window > THRESHOLD else 20), max_size=3))
    max_uses = draw(st.one_of(st.none(), st.integers(1, 8)))
    with_tool = draw(st.booleans())
    max_tokens = draw(st.integers(1, 4000))
    asked_geo = draw(st.sampled_from([None, "us", "global"]))
    # The upstream may report "us" without being asked: a workspace default.
    reported_geo = asked_geo or draw(st.sampled_from(["", "", "us"]))
    stream = draw(st.booleans())
    blocks: list[dict[str, object]] = [{"type": "text", "text": text}]
    blocks += [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": png(w, h)},
        }
        for w, h in images
    ]
    blocks += [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}] * urls
    blocks += [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(n)},
        }
        for n in pdfs
    ]
    body: dict[str, object] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": blocks}],
    }
    if asked_geo is not None:
        body["inference_geo"] = asked_geo
    if with_tool:
        tool: dict[str, object] = {"type": "web_search_20250305", "name": "web_search"}
        if max_uses is not None:
            tool["max_uses"] = max_uses
        body["tools"] = [tool]
    # What the upstream may report inside the estimate's envelope: the text at most one token a
    # character, each image at most its area's tokens, each PDF page at most its page tokens,
    # output at most max_tokens. Text may be denser than the estimate's four bytes a token (up
    # to a token a character): what goes beyond is documented excess.
    text_tokens = draw(st.integers(0, len(text)))
    dense = max(0, text_tokens - len(text.encode()) // 4)
    seen = min(
        window,
        text_tokens
        + sum(min(IMAGE_MAX_TOKENS, -(-w * h // 750)) for w, h in images)
        + urls * draw(st.integers(0, IMAGE_MAX_TOKENS))
        + sum(pages * draw(st.integers(0, PDF_PAGE_TOKENS)) for pages in pdfs),
    )
    bound = (max_uses or UNBOUNDED_TOOL_USES) if with_tool else 0
    searches = draw(st.integers(0, bound + 4)) if with_tool else 0
    usage = Usage(
        input_tokens=seen,
        output_tokens=draw(st.integers(0, max_tokens)),
        web_search_requests=searches,
        inference_geo=reported_geo,
    )
    # The answer as the estimate foresees it: no input beyond it, no search past the bound
    # (a stream's extensions cover those), the region only when asked for.
    foreseen = usage.model_copy(
        update={
            "input_tokens": max(0, seen - dense),
            "web_search_requests": searches if stream else min(searches, bound),
            "inference_geo": reported_geo if asked_geo else "",
        }
    )
    excess = cost(usage, window) - cost(foreseen, window)
    steps: tuple[str, ...] = ()
    cut_after: int | None = None
    if stream:
        deltas = -(-usage.output_tokens // DELTA_TOKENS)
        steps = tuple(draw(st.permutations(["search"] * searches + ["delta"] * deltas)))
        cut_after = draw(st.one_of(st.none(), st.integers(0, len(steps))))
    return Request(body, window, usage, max(0, excess), stream, steps, cut_after)


def estimate_of(request: Request) -> tuple[int, tuple[int, int]]:
    raw = orjson.dumps(request.body)
    tokens = estimate_input(request.body, len(raw), request.window)
    premium = hold_premium(
        request.body, CATALOGUE, NOW, context_window=request.window, input_tokens=tokens
    )
    return tokens, premium


def hold_of(request: Request) -> int:
    """What billing holds at admission (``admission.py``: ``hold_nano`` + the tools' worst case)."""
    tokens, (input_bps, output_bps) = estimate_of(request)
    return hold_nano(
        tokens,
        int(str(request.body["max_tokens"])),
        PRICE,
        discount_bps=DISCOUNT,
        multipliers=CATALOGUE.cache_multipliers_bps,
        input_premium_bps=input_bps,
        output_premium_bps=output_bps,
    ) + discounted(server_tools_worst(request.body, CATALOGUE, NOW), DISCOUNT)


@dataclass
class Account:
    balance: int
    holds: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.holds


@dataclass
class Flight:
    """One admitted request: its hold (grown by extensions) and, at the end, its cost."""

    request: Request
    held: int
    excess: int = 0
    extensions: list[int] = field(default_factory=list)


def step_excess(request: Request) -> int:
    """What one step of a stream may carry past a hold billing refused to grow: a search, or
    one delta's output, at the premium the request is billed at."""
    if not request.stream:
        return 0
    _, output_bps = premium_bps(
        CATALOGUE,
        NOW,
        context_window=request.window,
        input_tokens=request.usage.input_tokens,
        options={"inference_geo": request.usage.inference_geo},
    )
    delta = -(-DELTA_TOKENS * PRICE.output_nano_per_mtok * output_bps * (BPS - DISCOUNT)) // (
        BPS * BPS * 1_000_000
    )
    return discounted(SEARCH, DISCOUNT) + delta


def run_stream(flight: Flight, account: Account) -> Usage:
    """The stream through the edge's budget: extensions granted while ``available`` covers them
    (billing's rule), the stream ended where the budget says once one was refused, or where the
    client left. Returns the usage recorded (the upstream's final report when complete, else
    what the edge meters: the input of ``message_start``, the output from the deltas, the
    searches it saw)."""
    request = flight.request
    _, premium = estimate_of(request)

    def reported_premium(meters: object) -> tuple[int, int]:
        return premium_bps(
            CATALOGUE,
            NOW,
            context_window=request.window,
            input_tokens=request.usage.input_tokens,
            options={"inference_geo": request.usage.inference_geo},
        )

    budget = HoldBudget(
        held=flight.held,
        price=POINT,
        discount_bps=DISCOUNT,
        multipliers=CATALOGUE.cache_multipliers_bps,
        max_tokens=int(str(request.body["max_tokens"])),
        premium=premium,
        reported_premium=reported_premium,
        tool_prices=server_tool_prices(CATALOGUE, NOW),
    )
    start = {"input_tokens": request.usage.input_tokens}
    refused = False
    searches = output = 0
    for index, step in enumerate(request.steps):
        if request.cut_after is not None and index >= request.cut_after:
            break
        if step == "search":
            budget.server_tool("web_search_requests")
            searches += 1
        else:
            tokens = min(DELTA_TOKENS, request.usage.output_tokens - output)
            budget.delta(DELTA_OVERHEAD + 3 * tokens)
            output += tokens
        projected = budget.projected(start)
        if refused:
            if budget.spent(projected):
                break
            continue
        if budget.running_low(projected):
            asked = budget.extension_tokens(projected)
            grow = extension_nano(
                asked,
                PRICE,
                discount_bps=DISCOUNT,
                multipliers=CATALOGUE.cache_multipliers_bps,
            )
            if account.available >= grow:  # billing's conditional update
                account.holds += grow
                flight.held += grow
                budget.held = flight.held
                flight.extensions.append(grow)
            else:
                refused = True
                if budget.spent(projected):
                    break
    else:
        if request.cut_after is None:
            return request.usage  # complete: the upstream's final report
    return request.usage.model_copy(
        update={"output_tokens": budget.output_tokens(0), "web_search_requests": searches}
    )


def settle(flight: Flight, account: Account) -> None:
    request = flight.request
    usage = run_stream(flight, account) if request.stream else request.usage
    account.balance -= cost(usage, request.window)
    account.holds -= flight.held
    flight.excess = request.static_excess + step_excess(request)


@settings(max_examples=300, deadline=None)
@given(request=requests())
def test_a_request_costs_at_most_its_hold_plus_its_documented_excess(request: Request) -> None:
    hold = hold_of(request)
    # An account with exactly the hold: every extension a stream asks for is refused.
    account = Account(balance=hold, holds=hold)
    flight = Flight(request, hold)
    settle(flight, account)
    assert account.holds == 0
    assert account.balance >= -flight.excess


@settings(max_examples=80, deadline=None)
@given(
    mix=st.lists(requests(), min_size=1, max_size=12),
    balance=st.integers(0, 2 * 10**9),
    concurrency=st.integers(1, 4),
    order=st.randoms(use_true_random=False),
)
def test_the_balance_never_ends_below_the_excesses_in_flight(
    mix: list[Request], balance: int, concurrency: int, order: object
) -> None:
    """Admission as billing does it (refused unless ``available`` covers the hold); up to
    ``concurrency`` requests in flight, their streams run and settled in any order."""
    account = Account(balance)
    in_flight: list[Flight] = []
    worst_excess = 0

    def settle_all() -> None:
        nonlocal worst_excess
        order.shuffle(in_flight)  # type: ignore[attr-defined]
        documented = sum(f.request.static_excess + step_excess(f.request) for f in in_flight)
        worst_excess = max(worst_excess, documented)
        for flight in in_flight:
            settle(flight, account)
            assert account.balance >= -worst_excess
        in_flight.clear()

    for request in mix:
        hold = hold_of(request)
        if account.available < hold:
            continue  # 402: nothing is sent upstream
        account.holds += hold
        in_flight.append(Flight(request, hold))
        if len(in_flight) == concurrency:
            settle_all()
    settle_all()
    assert account.holds == 0
    assert account.balance >= -worst_excess


def test_a_stream_past_its_search_bound_grows_its_hold_instead_of_overspending() -> None:
    """Twelve searches by a tool held for ten: the stream's extensions cover the two more while
    the balance allows; with nothing more available, the stream is cut one search past it."""
    body: dict[str, object] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "find"}]}],
    }
    usage = Usage(input_tokens=1, output_tokens=40, web_search_requests=12)
    request = Request(body, 200_000, usage, 0, True, ("search",) * 12 + ("delta",))
    hold = hold_of(request)
    rich = Account(balance=10**9, holds=hold)
    flight = Flight(request, hold)
    settle(flight, rich)
    assert flight.extensions and sum(flight.extensions) >= 2 * discounted(SEARCH, DISCOUNT)
    assert rich.balance == 10**9 - cost(usage, 200_000)

    poor = Account(balance=hold, holds=hold)
    cut = Flight(request, hold)
    settle(cut, poor)
    assert not cut.extensions
    assert -discounted(SEARCH, DISCOUNT) <= poor.balance < 0
