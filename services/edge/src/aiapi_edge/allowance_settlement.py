"""Releases the offline allowance as billing settles the requests admitted on it.

While requests admitted on the allowance (:mod:`.allowance`) are unsettled, this loop asks
billing for each one's usage record (the ``GET /v1/usage/requests/{id}`` query) about once a
second; a record means billing has priced the request and moved the money, so its estimate stops
counting. Nothing is asked while every allowance request is settled, i.e. almost always.
"""

from __future__ import annotations

import asyncio
import logging

from aiapi_shared.bus import Bus
from aiapi_shared.lifecycle import unless_stopped

from aiapi_edge.allowance import OfflineAllowance
from aiapi_edge.errors import GatewayError
from aiapi_edge.usage_route import request_record

log = logging.getLogger("aiapi.edge.allowance")

_PER_ROUND = 64  # at most this many questions a round: a long outage must not become a storm


async def release_settled(
    allowance: OfflineAllowance,
    bus: Bus,
    stop: asyncio.Event,
    *,
    interval_s: float = 1.0,
    timeout_s: float = 0.5,
) -> None:
    spent = asyncio.Event()
    allowance.on_spend = spent.set
    while not stop.is_set():
        if not allowance.unsettled():  # nothing to ask about: asleep until a spend (no timer)
            spent.clear()
            if not allowance.unsettled() and await unless_stopped(spent.wait(), stop) is None:
                return
        for request_id, account_id in allowance.unsettled()[:_PER_ROUND]:
            if stop.is_set() or not bus.is_connected:
                break
            try:
                await request_record(bus, account_id, request_id, timeout_s)
            except GatewayError as error:
                if error.status != 404:  # billing away or odd: ask again next round
                    break
                continue  # not settled yet
            allowance.settled(request_id)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue
