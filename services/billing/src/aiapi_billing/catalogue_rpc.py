"""Request/reply handlers for the live catalogue (operator changes come through accounts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiapi_shared import billing_api as api
from aiapi_shared.events import Record
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import catalogue_store
from aiapi_billing.catalogue_publisher import CataloguePublisher
from aiapi_billing.repository import Conn
from aiapi_billing.rpc import _handler

Handler = Callable[[bytes], Awaitable[bytes]]
C = TypeVar("C", bound=Record)


def catalogue_routes(
    pool: AsyncConnectionPool, publisher: CataloguePublisher
) -> list[tuple[str, Handler]]:
    async def reply() -> api.CatalogueReply:
        version, catalogue = await publisher.current()
        return api.CatalogueReply(version=version, catalogue=catalogue)

    def change(
        apply: Callable[[Conn, C], Awaitable[None]],
    ) -> Callable[[C], Awaitable[Record]]:
        async def run(command: C) -> Record:
            async with pool.connection() as conn, conn.transaction():
                await apply(conn, command)
            publisher.changed()
            return await reply()

        return run

    async def get(_: api.CatalogueQuery) -> Record:
        return await reply()

    return [
        (api.CATALOGUE_GET_SUBJECT, _handler(api.CatalogueQuery, get)),
        (
            api.CATALOGUE_MODEL_SUBJECT,
            _handler(api.PutModelCommand, change(catalogue_store.put_model)),
        ),
        (
            api.CATALOGUE_ALIAS_SUBJECT,
            _handler(api.PutAliasCommand, change(catalogue_store.put_alias)),
        ),
        (
            api.CATALOGUE_PRICE_SUBJECT,
            _handler(api.AddPriceCommand, change(catalogue_store.add_model_price)),
        ),
        (
            api.CATALOGUE_PLAN_SUBJECT,
            _handler(api.PutPlanCommand, change(catalogue_store.put_plan)),
        ),
        (
            api.CATALOGUE_METER_SUBJECT,
            _handler(api.PutMeterPriceCommand, change(catalogue_store.put_meter_price)),
        ),
        (
            api.ACCOUNT_TERMS_SUBJECT,
            _handler(api.PutAccountTermsCommand, change(catalogue_store.put_account_terms)),
        ),
    ]
