"""The overspend bound (docs/billing.md), as a property over random request mixes: with holds
taken by the edge's estimate (per content block, server tools at their worst case) and billing's
hold rule, an account admitted only while its available balance covers the hold never ends
below minus the documented excesses of the requests it had in flight together; and a request
whose usage stays inside what the estimate foresees has no excess at all; text denser than the
estimate and searches beyond the bound are the excess the docs name."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiapi_billing.pricing import hold_nano
from aiapi_edge.estimate import (
    IMAGE_MAX_TOKENS,
    PDF_PAGE_TOKENS,
    UNBOUNDED_TOOL_USES,
    estimate_input,
    server_tools_worst,
)
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.pricing import Price, discounted, request_cost
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CATALOGUE = default_catalogue()
PRICE = Price(1, "claude-sonnet-4-6", datetime(2026, 1, 1, tzinfo=UTC), 3 * 10**9, 15 * 10**9)
WINDOW = 200_000


def png(width: int, height: int) -> str:
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    return base64.b64encode(head + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)).decode()


def pdf(pages: int) -> str:
    body = b"%PDF-1.7\n" + b"".join(
        b"%d 0 obj << /Type /Page /Parent 1 0 R >> endobj\n" % i for i in range(pages)
    )
    return base64.b64encode(body).decode()


@dataclass(frozen=True)
class Request:
    body: dict[str, object]
    usage: Usage  # what the upstream reports
    excess: int  # the documented excess: the part of the cost outside the estimate


@st.composite
def requests(draw: st.DrawFn) -> Request:
    text = draw(st.text(min_size=1, max_size=400))
    images = draw(st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 3000)), max_size=3))
    urls = draw(st.integers(0, 2))
    pdfs = draw(st.lists(st.integers(1, 20), max_size=2))
    max_uses = draw(st.one_of(st.none(), st.integers(1, 8)))
    with_tool = draw(st.booleans())
    max_tokens = draw(st.integers(1, 4000))
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
    if with_tool:
        tool: dict[str, object] = {"type": "web_search_20250305", "name": "web_search"}
        if max_uses is not None:
            tool["max_uses"] = max_uses
        body["tools"] = [tool]
    # What the upstream may report inside the estimate's envelope: the text at most one token a
    # character, each image at most its area's tokens, each PDF page at most its page tokens,
    # searches at most the tool's bound, output at most max_tokens (less when a stream is cut).
    # Text may be denser than the estimate's four bytes a token (up to a token a character):
    # what goes beyond is documented excess (a).
    text_tokens = draw(st.integers(0, len(text)))
    dense = max(0, text_tokens - len(text.encode()) // 4)
    seen = (
        text_tokens
        + sum(min(IMAGE_MAX_TOKENS, -(-w * h // 750)) for w, h in images)
        + urls * draw(st.integers(0, IMAGE_MAX_TOKENS))
        + sum(pages * draw(st.integers(0, PDF_PAGE_TOKENS)) for pages in pdfs)
    )
    bound = (max_uses or UNBOUNDED_TOOL_USES) if with_tool else 0
    searches = draw(st.integers(0, bound + 3))  # a few more than allowed: an excess
    usage = Usage(
        input_tokens=min(seen, WINDOW),
        output_tokens=draw(st.integers(0, max_tokens)),
        web_search_requests=searches,
    )
    search_price = int(CATALOGUE.meters["web_search_requests"][0].usd_per_unit)
    beyond = max(0, searches - bound) * search_price
    dense_nano = -(-dense * PRICE.input_nano_per_mtok // 1_000_000)
    return Request(body, usage, discounted(beyond + dense_nano, 7000))


def hold_of(request: Request) -> int:
    raw = orjson.dumps(request.body)
    estimate = estimate_input(request.body, len(raw), WINDOW)
    tokens = hold_nano(
        estimate,
        int(str(request.body["max_tokens"])),
        PRICE,
        discount_bps=7000,
        multipliers=CATALOGUE.cache_multipliers_bps,
    )
    return tokens + discounted(server_tools_worst(request.body, CATALOGUE, NOW), 7000)


def cost_of(request: Request) -> int:
    return request_cost(
        request.usage,
        PRICE,
        catalogue=CATALOGUE,
        discount_bps=7000,
        moment=NOW,
        context_window=WINDOW,
    ).cost


@settings(max_examples=300, deadline=None)
@given(request=requests())
def test_a_request_costs_at_most_its_hold_plus_its_documented_excess(request: Request) -> None:
    assert cost_of(request) <= hold_of(request) + request.excess


@settings(max_examples=60, deadline=None)
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
    ``concurrency`` requests in flight, settled in any order at their reported cost."""
    holds = 0
    in_flight: list[tuple[Request, int]] = []
    worst_excess = 0
    for request in mix:
        hold = hold_of(request)
        if balance - holds < hold:
            continue  # 402: nothing is sent upstream
        holds += hold
        in_flight.append((request, hold))
        if len(in_flight) == concurrency or request is mix[-1]:
            worst_excess = max(worst_excess, sum(r.excess for r, _ in in_flight))
            order.shuffle(in_flight)  # type: ignore[attr-defined]
            for settled, held in in_flight:
                balance -= cost_of(settled)
                holds -= held
                assert balance >= -worst_excess
            in_flight.clear()
    for settled, held in in_flight:
        balance -= cost_of(settled)
        holds -= held
    assert balance >= -max(worst_excess, sum(r.excess for r, _ in in_flight))
