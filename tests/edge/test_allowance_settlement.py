"""The loop that asks billing whether requests admitted on the offline allowance were settled:
it sleeps while there are none (no timer at rest) and wakes for the first one."""

from __future__ import annotations

import asyncio
from typing import cast

from aiapi_edge.allowance import OfflineAllowance
from aiapi_edge.allowance_settlement import release_settled
from aiapi_shared.bus import Bus


class CountedAllowance(OfflineAllowance):
    """Counts the loop's rounds: each one looks at what is unsettled."""

    def __init__(self) -> None:
        super().__init__(10**9)
        self.looks = 0

    def unsettled(self) -> list[tuple[str, str]]:
        self.looks += 1
        return super().unsettled()


class AwayBus:
    is_connected = False  # billing cannot be asked: the round ends at once


async def test_the_loop_sleeps_while_nothing_is_unsettled_and_wakes_for_a_spend() -> None:
    allowance = CountedAllowance()
    stop = asyncio.Event()
    bus = cast(Bus, AwayBus())
    loop = asyncio.create_task(release_settled(allowance, bus, stop, interval_s=0.01))
    await asyncio.sleep(0.3)  # thirty rounds, were it on a timer
    asleep = allowance.looks
    assert asleep <= 2
    assert allowance.try_spend("acct_1", "req_1", 1_000, 10**9)
    await asyncio.sleep(0.3)  # unsettled: asked about every round
    assert allowance.looks > asleep + 5
    allowance.settled("req_1")
    await asyncio.sleep(0.05)
    settled = allowance.looks
    await asyncio.sleep(0.3)
    assert allowance.looks <= settled + 2  # asleep again
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
