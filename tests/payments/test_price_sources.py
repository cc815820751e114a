"""Price sources over HTTP (local fake tickers), then the median and the outage."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from aiapi_payments.model import Asset
from aiapi_payments.policy import parse_usd
from aiapi_payments.price_sources import PriceFetcher
from aiapi_payments.pricing import median_rate
from aiapi_payments.tickers import BUILTIN_SOURCES, PriceSourceError, parse_price_sources
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.payments.fake_esplora import serve

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ticker_app(down: set[str]) -> Starlette:
    async def a(request: Request) -> Response:
        if "a" in down:
            return PlainTextResponse("maintenance", status_code=503)
        return JSONResponse(
            {"data": {"amount": "3000.123456789123", "base": request.path_params["asset"]}}
        )

    async def b(_: Request) -> Response:
        if "b" in down:
            return PlainTextResponse("not json")
        return PlainTextResponse('{"result": [{"last": 3010.5}]}', media_type="application/json")

    return Starlette(routes=[Route("/a/{asset}", a), Route("/b/{asset}", b)])


def test_the_setting_names_builtins_or_url_and_path() -> None:
    assert parse_price_sources(None) == list(BUILTIN_SOURCES.values())
    assert parse_price_sources("") == []
    custom = parse_price_sources("coinbase, mine=http://127.0.0.1:9/{asset_lower}|result.0.last")
    assert custom[0] is BUILTIN_SOURCES["coinbase"]
    assert custom[1].url(Asset.BTC) == "http://127.0.0.1:9/btc"
    assert custom[1].json_path == ("result", "0", "last")
    with pytest.raises(PriceSourceError):
        parse_price_sources("nonsense")


async def test_fetch_median_and_outage() -> None:
    down: set[str] = set()
    async with serve(ticker_app(down)) as url, httpx.AsyncClient() as client:
        sources = parse_price_sources(
            f"a={url}/a/{{asset}}|data.amount,b={url}/b/{{asset}}|result.0.last"
        )
        fetcher = PriceFetcher(sources, client, clock=lambda: NOW)
        quotes = await fetcher.fetch(Asset.ETH)
        assert sorted(q.rate_nano_usd for q in quotes) == [3000_123456789, 3010_500000000]
        choice = median_rate(quotes, Asset.ETH, NOW)
        assert choice is not None
        assert choice.rate_nano_usd == (parse_usd("3000.123456789") + parse_usd("3010.5")) // 2

        down.update({"a", "b"})  # one answers 503, the other garbage: no rate, never a guess
        assert await fetcher.fetch(Asset.ETH) == []
        down.discard("b")
        assert median_rate(await fetcher.fetch(Asset.ETH), Asset.ETH, NOW) is None
