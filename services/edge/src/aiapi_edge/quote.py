"""The ``aiapi-cost-usd`` and ``aiapi-balance-usd`` headers: a request's price, quoted by the
edge, and the balance it leaves (pure).

It is computed with billing's own function (``aiapi_shared.pricing.request_cost``) from the usage
the upstream reported, the model's price and the meters in force when the request started (the
catalogue the edge sells from is billing's), and the plan's discount; so the debit billing
settles equals it to the nano-USD. No header when a price is missing (billing then waits for the
operator to add one, and the debit is not known yet).

The balance left is the settled balance of the account as the edge last heard it from billing
(its copy of billing's balance snapshot, :class:`.mirrors.BalanceMirror`) less this request's
cost. It is computed before the request's usage event exists, so the snapshot cannot include
this request's debit; it does not know what other requests of the account still in flight (or
settled in the last moments, before their snapshot arrived) will debit. With nothing else in
flight it equals the balance billing settles to. No header without a snapshot or a cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.records_v1 import BalanceSnapshot
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.money import format_usd
from aiapi_shared.pricing import Price, UnpricedMeter, request_cost

if TYPE_CHECKING:  # the type only: this module does no I/O
    from aiapi_edge.gateway import Exchange

COST_HEADER = b"aiapi-cost-usd"
BALANCE_HEADER = b"aiapi-balance-usd"


def quoted_cost(catalogue: Catalogue, exchange: Exchange) -> int | None:
    """What billing will debit for ``exchange`` (nano-USD), or None when it cannot be priced.
    The price and terms are those in force at the request's start, looked up at its admission
    (:meth:`.gateway.Gateway.admit`)."""
    point, terms = exchange.price, exchange.terms
    if point is None or terms is None:
        return None
    price = Price(
        price_id=0,
        model=exchange.model.id,
        effective_from=point.effective_from,
        input_nano_per_mtok=point.input_usd_per_mtok,
        output_nano_per_mtok=point.output_usd_per_mtok,
    )
    try:
        return request_cost(
            Usage.model_validate(exchange.meter.meters()),
            price,
            catalogue=catalogue,
            discount_bps=terms.discount_bps,
            moment=exchange.started_at,
            context_window=exchange.model.context_window,
        ).cost
    except UnpricedMeter:
        return None


def cost_headers(
    catalogue: Catalogue, exchange: Exchange, snapshot: BalanceSnapshot | None = None
) -> list[tuple[bytes, bytes]]:
    """The cost header, and the balance-left header when the account's snapshot is known."""
    cost = quoted_cost(catalogue, exchange)
    if cost is None:
        return []
    headers = [(COST_HEADER, format_usd(cost).encode())]
    if snapshot is not None:
        headers.append((BALANCE_HEADER, format_usd(snapshot.balance - cost).encode()))
    return headers
