"""What a Message Batch holds and what it bills. Pure: no I/O.

A batch is priced like its requests sent one by one, at the upstream's batch tier: each
request's usage carries ``service_tier: "batch"``, whose meter in the catalogue halves the token
price (``catalogue.json``, ``meters``), with the plan's discount on top, rounded once per request
exactly as any request is (``aiapi_shared.pricing``). The hold is the same arithmetic applied to
each request's worst case (its estimated input and every token it may generate), summed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiapi_shared.batches_api import BatchItemAsk, BatchItemResult, BatchRecord
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events import UsageRecorded
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.pricing import Price, discounted, request_cost

BATCH_TIER = "batch"


def item_request_id(batch_id: str, custom_id: str) -> str:
    """A batch request's usage record id: unique, and the same on every attempt to settle."""
    return f"{batch_id}:{custom_id}"


def item_hold(
    item: BatchItemAsk,
    price: Price,
    *,
    catalogue: Catalogue,
    discount_bps: int,
    moment: datetime,
    context_window: int,
) -> int:
    """The most one request of the batch may cost; raises ``UnpricedMeter`` when the catalogue
    has no batch meter at ``moment``."""
    worst = Usage(
        input_tokens=item.estimated_input_tokens,
        output_tokens=item.max_tokens,
        service_tier=BATCH_TIER,
    )
    tokens = request_cost(
        worst,
        price,
        catalogue=catalogue,
        discount_bps=discount_bps,
        moment=moment,
        context_window=context_window,
    ).cost
    return tokens + discounted(item.server_tools_nano, discount_bps)


def item_events(
    batch: BatchRecord,
    models: Mapping[str, Sequence[Any]],
    results: Sequence[BatchItemResult],
    finished_at: datetime,
) -> list[UsageRecorded]:
    """One usage event per succeeded request of the batch (the others cost nothing), priced as
    the model sold for it when the batch was admitted; a result for a custom_id the batch never
    had is ignored (it cannot be the customer's)."""
    events: list[UsageRecorded] = []
    for result in results:
        if result.outcome != "succeeded" or result.usage is None:
            continue
        pair = models.get(result.custom_id)
        if pair is None:
            continue
        requested, sold = str(pair[0]), str(pair[1])
        request_id = item_request_id(batch.batch_id, result.custom_id)
        events.append(
            UsageRecorded(
                event_id=request_id,
                request_id=request_id,
                account_id=batch.account_id,
                key_id=batch.key_id,
                model=sold,
                requested_model=requested,
                plan=batch.plan,
                route="batch",
                started_at=batch.started_at,
                finished_at=finished_at,
                outcome="ok",
                status_code=200,
                usage=result.usage.model_copy(update={"service_tier": BATCH_TIER}),
            )
        )
    return events
