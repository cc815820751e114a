"""Billing's request/reply subjects: admission for the edge, the read side and commands.

Every handler parses its request model, runs, and answers the reply model or an ``ApiError``;
this is the one place where billing's errors become statuses on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiapi_shared import billing_api as api
from aiapi_shared.admission import (
    ADMIT_SUBJECT,
    EXTEND_SUBJECT,
    LEASE_CLOSE_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
    AdmissionRequest,
    HoldExtensionRequest,
    LeaseCloseRequest,
    LeaseGrantRequest,
    LeaseTopUpRequest,
)
from aiapi_shared.bus import Bus
from aiapi_shared.events import Record
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError

from aiapi_billing.admission import Admitter
from aiapi_billing.commands import Commands
from aiapi_billing.errors import BillingError, Unavailable
from aiapi_billing.lease_commands import LeaseCommands
from aiapi_billing.repository import Conn, queries, request_log

log = logging.getLogger("aiapi.billing.rpc")

QUEUE = "billing"
R = TypeVar("R", bound=Record)


def _handler(
    model: type[R], run: Callable[[R], Awaitable[Record]]
) -> Callable[[bytes], Awaitable[bytes]]:
    async def handle(data: bytes) -> bytes:
        try:
            request = model.model_validate_json(data)
            reply = await run(request)
        except ValidationError as exc:
            reply = api.ApiError(
                error="invalid_request_error", message=f"{exc.error_count()} invalid fields"
            )
        except BillingError as exc:
            reply = exc.to_api_error()
        except (OperationalError, PoolTimeout) as exc:
            log.warning("request refused, database unavailable: %s", type(exc).__name__)
            reply = Unavailable("billing's database is unavailable").to_api_error()
        return reply.model_dump_json().encode()

    return handle


class Rpc:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        admitter: Admitter,
        commands: Commands,
        after_commit: Callable[[str], None],
        after_hold: Callable[[str], None] | None = None,
        *,
        leases: LeaseCommands | None = None,
        concurrency: int = 16,
    ) -> None:
        self._pool = pool
        self._admitter = admitter
        self._commands = commands
        self._after_commit = after_commit
        # A hold moves the balance snapshot but queues no event: nothing for the outbox relay.
        self._after_hold = after_hold or after_commit
        self._leases = leases
        self._concurrency = concurrency

    async def serve(self, bus: Bus) -> None:
        routes: list[tuple[str, Callable[[bytes], Awaitable[bytes]]]] = [
            (ADMIT_SUBJECT, _handler(AdmissionRequest, self._admit)),
            (EXTEND_SUBJECT, _handler(HoldExtensionRequest, self._extend)),
            (api.ACCOUNT_SUBJECT, _handler(api.AccountQuery, self._read(queries.balance))),
            (api.LEDGER_SUBJECT, _handler(api.LedgerQuery, self._read(queries.ledger))),
            (
                api.REQUEST_RECORD_SUBJECT,
                _handler(api.RequestRecordQuery, self._read(queries.request_record)),
            ),
            (
                api.DAILY_USAGE_SUBJECT,
                _handler(api.DailyUsageQuery, self._read(queries.daily_usage)),
            ),
            (
                api.REQUEST_LIST_SUBJECT,
                _handler(api.RequestListQuery, self._read(request_log.request_list)),
            ),
            (
                api.DAILY_KEY_USAGE_SUBJECT,
                _handler(api.DailyUsageQuery, self._read(request_log.daily_key_usage)),
            ),
            (
                api.USAGE_SERIES_SUBJECT,
                _handler(api.DailyUsageQuery, self._read(request_log.usage_series)),
            ),
            (api.ADJUST_SUBJECT, _handler(api.AdjustCommand, self._write(self._commands.adjust))),
            (
                api.PURCHASE_PLAN_SUBJECT,
                _handler(api.PurchasePlanCommand, self._write(self._commands.purchase_plan)),
            ),
        ]
        if self._leases is not None:
            routes += [
                (LEASE_GRANT_SUBJECT, _handler(LeaseGrantRequest, self._lease_grant)),
                (LEASE_TOP_UP_SUBJECT, _handler(LeaseTopUpRequest, self._lease_top_up)),
                (LEASE_CLOSE_SUBJECT, _handler(LeaseCloseRequest, self._lease_close)),
            ]
        for subject, handler in routes:
            # Handlers wait on PostgreSQL: answer several requests at once, not one after another.
            await bus.serve(subject, handler, queue=QUEUE, concurrency=self._concurrency)

    async def _admit(self, req: AdmissionRequest) -> Record:
        reply = await self._admitter.admit(req)
        if reply.decision == "admit":
            self._after_hold(req.account_id)
        return reply

    async def _extend(self, req: HoldExtensionRequest) -> Record:
        reply = await self._admitter.extend(req)
        if reply.granted:
            self._after_hold(req.account_id)
        return reply

    # A lease moves holds like an admission: the snapshot is republished, no event is queued.
    async def _lease_grant(self, req: LeaseGrantRequest) -> Record:
        assert self._leases is not None
        reply = await self._leases.grant(req)
        if reply.decision == "granted":
            self._after_hold(req.account_id)
        return reply

    async def _lease_top_up(self, req: LeaseTopUpRequest) -> Record:
        assert self._leases is not None
        reply = await self._leases.top_up(req)
        if reply.granted:
            self._after_hold(req.account_id)
        return reply

    async def _lease_close(self, req: LeaseCloseRequest) -> Record:
        assert self._leases is not None
        reply = await self._leases.close(req)
        if reply.released:
            self._after_hold(req.account_id)
        return reply

    def _read(
        self, query: Callable[[Conn, Any], Awaitable[Record]]
    ) -> Callable[[Any], Awaitable[Record]]:
        async def run(request: Any) -> Record:
            async with self._pool.connection(timeout=2.0) as conn:
                return await query(conn, request)

        return run

    def _write(
        self, command: Callable[[Conn, Any], Awaitable[Record]]
    ) -> Callable[[Any], Awaitable[Record]]:
        async def run(request: Any) -> Record:
            async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
                reply = await command(conn, request)
            self._after_commit(request.account_id)
            return reply

        return run
