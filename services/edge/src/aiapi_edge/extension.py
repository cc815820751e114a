"""Hold extension for long streams: the stream loop's side of :mod:`.budget`.

While a stream runs, each chunk's content deltas feed the budget; when less than half a chunk of
output is left in the hold, one extension request goes to billing in the background (the
forwarding never waits for it). A granted extension raises the budget; a refused one (or billing
unreachable: money that cannot be held is not spent) lets the stream run on to the held amount,
where the route ends it with an error event (type ``insufficient_balance``) and stops reading
the upstream. The output generated until then is metered from the upstream's report when it has
one, else from the budget's estimate: the one case where the edge bills an estimate, because
closing the upstream connection is what stops the generation and the upstream's count is lost
with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiapi_edge.budget import HoldBudget
from aiapi_edge.metering import UsageMeter

log = logging.getLogger("aiapi.edge.extension")

_DELTA = b"content_block_delta"
INSUFFICIENT_BALANCE_MESSAGE = "Your balance cannot cover more output for this request."


# Asks for ``tokens`` more output tokens' worth of hold; the new held total, or None if refused.
Extender = Callable[[int], Awaitable[int | None]]


class HoldGuard:
    __slots__ = ("_extend_by", "_hold_id", "_meter", "_task", "budget", "refused")

    def __init__(
        self, extend: Extender, budget: HoldBudget, meter: UsageMeter, *, hold_id: str
    ) -> None:
        self._extend_by = extend
        self._hold_id = hold_id  # for the log: the hold's id, or the lease's
        self._meter = meter
        self._task: asyncio.Task[None] | None = None
        self.budget = budget
        self.refused = False

    def observe(self, name: bytes, data: bytes) -> None:
        if name == _DELTA:
            self.budget.delta(len(data))

    def must_end(self) -> bool:
        """True once the stream has spent a hold that billing refused to extend."""
        projected = self.budget.projected(self._meter.usage)
        if self.refused:
            return self.budget.spent(projected)
        if self._task is None and self.budget.running_low(projected):
            self._task = asyncio.ensure_future(self._extend())
        return False

    async def _extend(self) -> None:
        tokens = self.budget.chunk_tokens
        amount = await self._extend_by(tokens)
        if amount is None:
            self.refused = True
            log.info("hold extension refused", extra={"hold_id": self._hold_id})
        else:
            self.budget.held = max(self.budget.held, amount)
        self._task = None

    def meter_cut(self) -> None:
        """The stream was cut: count the estimated output unless the upstream reported more."""
        reported = self._meter.usage.get("output_tokens")
        reported = reported if isinstance(reported, int) else 0
        self._meter.usage = {
            **self._meter.usage,
            "output_tokens": self.budget.output_tokens(reported),
        }

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
