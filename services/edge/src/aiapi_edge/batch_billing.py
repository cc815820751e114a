"""Asking billing about Message Batches (``aiapi_shared.batches_api``), its refusals mapped to
the customer's errors (:mod:`.billing_ask`): an unknown batch, or
another account's, is a 404 like any unknown one."""

from __future__ import annotations

from typing import TypeVar

from aiapi_shared import batches_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.events.base import Record

from aiapi_edge.billing_ask import ask_billing

R = TypeVar("R", bound=Record)


class BatchBilling:
    def __init__(self, bus: Bus, timeout_s: float) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def _call(self, subject: str, request: Record, reply: type[R], batch_id: str = "") -> R:
        return await ask_billing(
            self._bus,
            subject,
            request,
            reply,
            timeout_s=self._timeout_s,
            unavailable="Batches are unavailable right now.",
            missing=f"message_batch: {batch_id} not found",
        )

    async def open(self, command: api.BatchOpenCommand) -> api.BatchOpenReply:
        return await self._call(api.BATCH_OPEN_SUBJECT, command, api.BatchOpenReply)

    async def bind(self, command: api.BatchBindCommand) -> api.BatchRecord:
        return await self._call(api.BATCH_BIND_SUBJECT, command, api.BatchRecord)

    async def abandon(self, batch_id: str, reason: str) -> None:
        command = api.BatchAbandonCommand(batch_id=batch_id, reason=reason)
        await self._call(api.BATCH_ABANDON_SUBJECT, command, api.BatchSettleReply)

    async def get(self, account_id: str, batch_id: str) -> api.BatchRecord:
        query = api.BatchQuery(account_id=account_id, batch_id=batch_id)
        return await self._call(api.BATCH_GET_SUBJECT, query, api.BatchRecord, batch_id)

    async def delete(self, account_id: str, batch_id: str) -> api.BatchRecord:
        command = api.BatchDeleteCommand(account_id=account_id, batch_id=batch_id)
        return await self._call(api.BATCH_DELETE_SUBJECT, command, api.BatchRecord, batch_id)

    async def page(self, query: api.BatchListQuery) -> api.BatchListReply:
        return await self._call(api.BATCH_LIST_SUBJECT, query, api.BatchListReply)

    async def claim(self, command: api.BatchClaimCommand) -> api.BatchListReply:
        return await self._call(api.BATCH_CLAIM_SUBJECT, command, api.BatchListReply)

    async def update(self, command: api.BatchUpdateCommand) -> None:
        await self._call(api.BATCH_UPDATE_SUBJECT, command, api.BatchSettleReply)

    async def settle(self, command: api.BatchSettleCommand) -> api.BatchSettleReply:
        return await self._call(api.BATCH_SETTLE_SUBJECT, command, api.BatchSettleReply)
