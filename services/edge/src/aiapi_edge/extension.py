"""Hold extension for long streams: the stream loop's side of :mod:`.budget`.

While a stream runs, each chunk's content deltas and the server tools it opens feed the budget
(:mod:`.budget`); when less than half a chunk of
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

import orjson

from aiapi_edge.budget import HoldBudget
from aiapi_edge.metering import UsageMeter
from aiapi_edge.priced_options import TOOL_METERS

log = logging.getLogger("aiapi.edge.extension")

_DELTA = b"content_block_delta"
_BLOCK_START = b"content_block_start"
_SERVER_TOOL = b'"server_tool_use"'
# The stream events :meth:`HoldGuard.observe` reads.
GUARDED_EVENTS = frozenset((_DELTA, _BLOCK_START))
INSUFFICIENT_BALANCE_MESSAGE = "Your balance cannot cover more output for this request."


# Asks for ``tokens`` more output tokens' worth of hold; the new held total, or None if refused.
Extender = Callable[[int], Awaitable[int | None]]


def server_tool_meter(data: bytes) -> str | None:
    """The meter of the server tool a ``content_block_start`` event opens (``web_search`` ->
    ``web_search_requests``), or None when it opens something else."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    block = event.get("content_block") if isinstance(event, dict) else None
    if not isinstance(block, dict) or block.get("type") != "server_tool_use":
        return None
    name = block.get("name")
    return TOOL_METERS.get(name) if isinstance(name, str) else None


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
        elif name == _BLOCK_START and _SERVER_TOOL in data:
            meter = server_tool_meter(data)
            if meter is not None:
                self.budget.server_tool(meter)

    def must_end(self) -> bool:
        """True once the stream has spent a hold that billing refused to extend."""
        if self._task is not None:  # an extension is on its way: nothing to decide before it ends
            return False
        usage = self._meter.usage
        if self.budget.surely_within(usage):  # most chunks: a comparison, no pricing
            return False
        projected = self.budget.projected(usage)
        if self.refused:
            return self.budget.spent(projected)
        if self.budget.running_low(projected):
            self._task = asyncio.ensure_future(self._extend(projected))
        return False

    async def _extend(self, projected: int) -> None:
        tokens = self.budget.extension_tokens(projected)
        amount = await self._extend_by(tokens)
        if amount is None:
            self.refused = True
            log.info("hold extension refused", extra={"hold_id": self._hold_id})
        else:
            self.budget.held = max(self.budget.held, amount)
        self._task = None

    def meter_cut(self) -> None:
        """The stream was cut: count the estimated output unless the upstream reported more, and
        the server tools it opened unless the upstream reported more (its final count is lost
        with the stream, the searches were made)."""
        usage = self._meter.usage
        reported = usage.get("output_tokens")
        reported = reported if isinstance(reported, int) else 0
        tools = usage.get("server_tool_use")
        tools = dict(tools) if isinstance(tools, dict) else {}
        for meter, seen in self.budget.tools_seen.items():
            count = tools.get(meter)
            tools[meter] = max(seen, count if isinstance(count, int) else 0)
        self._meter.usage = {
            **usage,
            "output_tokens": self.budget.output_tokens(reported),
            **({"server_tool_use": tools} if tools else {}),
        }

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
