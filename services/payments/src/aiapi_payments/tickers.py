"""Which public tickers quote BTC/ETH, and how to read a rate from their answer. Pure: no I/O.

`AIAPI_PRICE_SOURCES` is a comma-separated list. Each item is a built-in ticker name
(`coinbase`, `bitstamp`, `gemini`) or `NAME=URL|JSON.PATH`, where the URL may hold `{asset}`
(`BTC`) or `{asset_lower}` (`btc`) and the path walks the JSON answer (`data.amount`,
`result.0.last`). Unset means the built-ins; an empty value means manual rates only. The
fetching is `price_sources.py`'s; the choice of rate is `pricing.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from aiapi_payments.model import Asset
from aiapi_payments.policy import NANO_PER_USD


class PriceSourceError(ValueError):
    pass


@dataclass(frozen=True)
class PriceSource:
    name: str
    url_template: str
    json_path: tuple[str, ...]

    def url(self, asset: Asset) -> str:
        return self.url_template.format(asset=asset.value, asset_lower=asset.value.lower())


BUILTIN_SOURCES: dict[str, PriceSource] = {
    "coinbase": PriceSource(
        "coinbase", "https://api.coinbase.com/v2/prices/{asset}-USD/spot", ("data", "amount")
    ),
    "bitstamp": PriceSource(
        "bitstamp", "https://www.bitstamp.net/api/v2/ticker/{asset_lower}usd/", ("last",)
    ),
    "gemini": PriceSource(
        "gemini", "https://api.gemini.com/v1/pubticker/{asset_lower}usd", ("last",)
    ),
}


def parse_price_sources(text: str | None) -> list[PriceSource]:
    if text is None:
        return list(BUILTIN_SOURCES.values())
    sources: list[PriceSource] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item in BUILTIN_SOURCES:
            sources.append(BUILTIN_SOURCES[item])
            continue
        name, equals, rest = item.partition("=")
        url, bar, path = rest.partition("|")
        if not equals or not bar or not name or not url.startswith(("http://", "https://")):
            raise PriceSourceError(
                "a price source is a built-in name (coinbase, bitstamp, gemini) "
                "or NAME=URL|JSON.PATH"
            )
        sources.append(PriceSource(name.strip(), url.strip(), tuple(path.strip().split("."))))
    if len({source.name for source in sources}) != len(sources):
        raise PriceSourceError("two price sources share a name")
    return sources


def extract_rate(document: object, path: Sequence[str]) -> int:
    """Walk `path` in a JSON document parsed with Decimal floats; nano-USD, rounded down."""
    node = document
    for step in path:
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            raise PriceSourceError(f"no {step!r} in the answer")
    if isinstance(node, bool) or not isinstance(node, str | int | Decimal):
        raise PriceSourceError("the price is neither a number nor a numeric string")
    try:
        value = Decimal(node)
    except InvalidOperation as error:
        raise PriceSourceError("the price is not a number") from error
    if not value.is_finite() or value <= 0:
        raise PriceSourceError("the price is not a positive number")
    return int((value * NANO_PER_USD).to_integral_value(rounding=ROUND_DOWN))
