"""Meters beyond tokens, priced exactly (integer nano-USD, rounded once up) from the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiapi_shared.catalogue import Catalogue, MeterPoint, default_catalogue
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.money import parse_usd
from aiapi_shared.pricing import Price, UnpricedMeter, request_cost

MOMENT = datetime(2026, 6, 1, tzinfo=UTC)
SONNET = Price(1, "claude-sonnet-4-6", datetime(2026, 1, 1, tzinfo=UTC), 3 * 10**9, 15 * 10**9)
BASIC, PRO = 7000, 8000


def cost(
    usage: Usage,
    discount: int = BASIC,
    catalogue: Catalogue | None = None,
    window: int = 1_000_000,
) -> tuple[int, int]:
    priced = request_cost(
        usage,
        SONNET,
        catalogue=catalogue or default_catalogue(),
        discount_bps=discount,
        moment=MOMENT,
        context_window=window,
    )
    return priced.cost, priced.list_cost


def test_web_searches_cost_10_usd_per_thousand_before_the_plan_discount() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500, web_search_requests=3)
    # list: 0.003 input + 0.0075 output + 3 x 0.01 searches; basic pays 30% of it.
    assert cost(usage) == (parse_usd("0.01215"), parse_usd("0.0405"))
    fetched = Usage(input_tokens=1000, output_tokens=500, web_fetch_requests=4)
    assert cost(fetched) == cost(Usage(input_tokens=1000, output_tokens=500))


def test_input_over_the_threshold_prices_the_whole_request_at_long_context_rates() -> None:
    long = Usage(input_tokens=250_000, output_tokens=1000)
    # 250,000 x 6 USD/M + 1,000 x 22.50 USD/M = 1.5225 list.
    assert cost(long, discount=0) == (parse_usd("1.5225"), parse_usd("1.5225"))
    assert cost(long) == (parse_usd("0.45675"), parse_usd("1.5225"))
    # A model whose window is the threshold never pays the premium (its input cannot exceed it).
    assert cost(long, discount=0, window=200_000)[0] == parse_usd("0.765")
    at_threshold = Usage(input_tokens=200_000, output_tokens=1000)
    assert cost(at_threshold, discount=0)[0] == parse_usd("0.615")
    # Cache reads count towards the threshold (and keep their 0.1x multiple of the doubled rate).
    cached = Usage(input_tokens=1, cache_read_input_tokens=200_000)
    assert cost(cached, discount=0)[0] == parse_usd("0.000006") + parse_usd("0.12")


def test_a_region_multiplies_the_token_cost_and_an_unpriced_tier_is_refused() -> None:
    us = Usage(input_tokens=1000, output_tokens=500, inference_geo="us")
    assert cost(us, discount=PRO) == (parse_usd("0.00231"), parse_usd("0.01155"))
    priority = Usage(input_tokens=1000, output_tokens=500, service_tier="priority")
    with pytest.raises(UnpricedMeter, match="service_tier:priority"):
        cost(priority)
    catalogue = default_catalogue()
    point = MeterPoint(effective_from=MOMENT, input_bps=12_500, output_bps=12_500)
    priced = catalogue.model_copy(
        update={"meters": {**catalogue.meters, "service_tier:priority": (point,)}}
    )
    assert cost(priority, catalogue=priced) == (parse_usd("0.0039375"), parse_usd("0.013125"))
    # A price that starts after the request does not apply to it.
    later = catalogue.model_copy(
        update={
            "meters": {
                **catalogue.meters,
                "service_tier:priority": (
                    point.model_copy(update={"effective_from": datetime(2027, 1, 1, tzinfo=UTC)}),
                ),
            }
        }
    )
    with pytest.raises(UnpricedMeter):
        cost(priority, catalogue=later)


def test_the_cost_is_rounded_once_up_to_one_nano_usd() -> None:
    # 1 input token on Sonnet at Basic: 3,000 nano x 0.3 = 900 nano exactly; one search more is
    # 3,000,000 nano exactly; 1 output token at 15 USD/M x 0.3 = 4,500 nano.
    assert cost(Usage(input_tokens=1)) == (900, 3000)
    assert cost(Usage(input_tokens=1, web_search_requests=1)) == (3_000_900, 10_003_000)
    tiny = Usage(input_tokens=1, inference_geo="us")  # 3,300 x 0.3 = 990
    assert cost(tiny) == (990, 3300)
    third = Usage(cache_read_input_tokens=1, inference_geo="us")  # 330 x 0.3 = 99
    assert cost(third) == (99, 330)
    odd = Usage(cache_read_input_tokens=1, inference_geo="us")
    assert cost(odd, discount=PRO)[0] == 66  # 330 x 0.2
    assert cost(Usage(cache_read_input_tokens=1), discount=6667)[0] == 100  # 99.99 -> 100
