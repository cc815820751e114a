"""The live catalogue: seeded once, changed by an operator, versioned, published to KV."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta

import pytest
from aiapi_billing import catalogue_publisher, catalogue_store
from aiapi_billing.catalogue_listener import CatalogueListener
from aiapi_billing.catalogue_publisher import CataloguePublisher, _version_of
from aiapi_billing.errors import BillingError, NotFound
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.repository import catalogue as catalogue_tables
from aiapi_billing.service import SCHEMA
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus, KeyNotFound
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.db import open_pool
from aiapi_shared.events.records_v1 import CATALOGUE_BUCKET, CATALOGUE_KEY, CatalogueSnapshot
from aiapi_shared.kv_versioned import put_if_newer
from psycopg_pool import AsyncConnectionPool

from tests.billing.conftest import eventually

SHIPPED = default_catalogue()


@pytest.fixture
async def pool(migrated: str) -> AsyncIterator[AsyncConnectionPool]:
    opened = open_pool(migrated, schema=SCHEMA, max_size=2)
    await opened.open()
    try:
        async with opened.connection() as conn:
            await catalogue_store.seed(conn, SHIPPED)
        yield opened
    finally:
        await opened.close()


def _new_model(**changes: object) -> api.PutModelCommand:
    fields: dict[str, object] = {
        "id": "claude-next-5",
        "display_name": "Claude Next 5",
        "context_window": 400_000,
        "max_output_tokens": 32_000,
        "input_usd_per_mtok": "2.00",
        "output_usd_per_mtok": "10.00",
        **changes,
    }
    return api.PutModelCommand.model_validate(fields)


async def test_the_shipped_catalogue_is_what_is_sold_at_first(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await catalogue_store.seed(conn, SHIPPED)  # idempotent
        _, sold = await catalogue_store.load(conn, SHIPPED)
    assert {m.id for m in sold.models} == {m.id for m in SHIPPED.models}
    now = datetime.now(UTC)
    for model in SHIPPED.models:
        live = sold.model(model.id)
        assert live is not None
        assert live.price_at(now) == model.price_at(now)
        assert live.traits == model.traits
    assert sold.plans == SHIPPED.plans


async def test_an_operator_adds_a_model_and_an_alias_and_the_version_moves(
    pool: AsyncConnectionPool,
) -> None:
    async with pool.connection() as conn:
        before = await catalogue_tables.version(conn)
        await catalogue_store.put_model(conn, _new_model())
        await catalogue_store.put_alias(
            conn, api.PutAliasCommand(alias="claude-next", target="claude-next-5")
        )
        await conn.commit()
        after, sold = await catalogue_store.load(conn, SHIPPED)
    assert after > before
    model = sold.model("claude-next")
    assert model is not None
    assert model.id == "claude-next-5"
    price = model.price_at(datetime.now(UTC))
    assert price is not None
    assert (price.input_usd_per_mtok, price.output_usd_per_mtok) == (2_000_000_000, 10_000_000_000)


async def test_a_new_model_needs_a_price_and_an_alias_a_real_target(
    pool: AsyncConnectionPool,
) -> None:
    async with pool.connection() as conn:
        with pytest.raises(BillingError, match="needs input and output prices"):
            await catalogue_store.put_model(
                conn, _new_model(input_usd_per_mtok=None, output_usd_per_mtok=None)
            )
        await conn.rollback()
        with pytest.raises(NotFound):
            await catalogue_store.put_alias(
                conn, api.PutAliasCommand(alias="x", target="no-such-model")
            )
        await conn.rollback()
        with pytest.raises(BillingError, match="cannot shadow"):
            await catalogue_store.put_alias(
                conn, api.PutAliasCommand(alias="claude-haiku-4-5", target="claude-opus-4-7")
            )


async def test_a_model_taken_off_sale_disappears_with_its_aliases(
    pool: AsyncConnectionPool,
) -> None:
    async with pool.connection() as conn:
        await catalogue_store.put_model(conn, _new_model())
        await catalogue_store.put_alias(
            conn, api.PutAliasCommand(alias="nx", target="claude-next-5")
        )
        await catalogue_store.put_model(
            conn, _new_model(on_sale=False, input_usd_per_mtok=None, output_usd_per_mtok=None)
        )
        await conn.commit()
        _, sold = await catalogue_store.load(conn, SHIPPED)
    assert sold.model("claude-next-5") is None
    assert "nx" not in sold.aliases


async def test_a_price_added_elsewhere_is_published_with_a_newer_version(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    publisher = CataloguePublisher(pool, bus, LiveCatalogue(SHIPPED))
    assert await publisher.publish_if_changed()
    assert not await publisher.publish_if_changed()  # nothing changed: nothing published
    kv = await bus.ensure_kv(CATALOGUE_BUCKET)
    first = CatalogueSnapshot.model_validate_json((await kv.get(CATALOGUE_KEY)).value or b"")

    later = datetime.now(UTC) + timedelta(days=1)
    async with pool.connection() as conn:  # as `python -m aiapi_billing price` would, elsewhere
        await catalogue_store.add_model_price(
            conn,
            api.AddPriceCommand.model_validate(
                {
                    "model": "claude-haiku-4-5",
                    "effective_from": later.isoformat(),
                    "input_usd_per_mtok": "0.80",
                    "output_usd_per_mtok": "4.00",
                }
            ),
        )
        await conn.commit()
    assert await publisher.publish_if_changed()
    second = CatalogueSnapshot.model_validate_json((await kv.get(CATALOGUE_KEY)).value or b"")
    assert second.version > first.version
    haiku = second.catalogue.model("claude-haiku-4-5")
    assert haiku is not None
    assert len(haiku.prices) == 2
    tomorrow = haiku.price_at(later)
    assert tomorrow is not None
    assert tomorrow.input_usd_per_mtok == 800_000_000


async def test_an_older_snapshot_never_replaces_a_newer_one(
    pool: AsyncConnectionPool, bus: Bus
) -> None:
    fresh = CataloguePublisher(pool, bus, LiveCatalogue(SHIPPED))
    await fresh.publish_if_changed()
    kv = await bus.ensure_kv(CATALOGUE_BUCKET)
    newest = CatalogueSnapshot.model_validate_json((await kv.get(CATALOGUE_KEY)).value or b"")
    stale = newest.model_copy(update={"version": newest.version - 1})
    landed = await put_if_newer(
        kv, CATALOGUE_KEY, stale.model_dump_json().encode(), version=stale.version,
        version_of=_version_of,
    )  # fmt: skip
    assert not landed
    kept = CatalogueSnapshot.model_validate_json((await kv.get(CATALOGUE_KEY)).value or b"")
    assert kept.version == newest.version


async def test_a_change_made_elsewhere_is_heard_and_published_without_polling(
    pool: AsyncConnectionPool, bus: Bus, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While the listener hears changes, the version is polled once an hour here: only the
    # notification of the change (migration 0035's trigger) can get it published.
    monkeypatch.setattr(catalogue_publisher, "HEARD_POLL_S", 3600.0)
    listener: CatalogueListener
    publisher = CataloguePublisher(
        pool, bus, LiveCatalogue(SHIPPED), interval_s=3600.0, heard=lambda: listener.listening
    )
    listener = CatalogueListener(migrated, publisher.changed)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(listener.run(stop)), asyncio.create_task(publisher.run(stop))]
    kv = await bus.ensure_kv(CATALOGUE_BUCKET)

    async def published_version() -> int:
        try:
            entry = await kv.get(CATALOGUE_KEY)
        except KeyNotFound:
            return -1
        return CatalogueSnapshot.model_validate_json(entry.value or b"").version

    try:
        await eventually(lambda: listener.listening)
        async with pool.connection() as conn:
            before = await catalogue_tables.version(conn)
        await eventually(lambda: _at_least(published_version(), before))
        later = datetime.now(UTC) + timedelta(days=2)
        async with pool.connection() as conn:  # another process's change, by SQL
            await catalogue_store.add_model_price(
                conn,
                api.AddPriceCommand.model_validate(
                    {
                        "model": "claude-haiku-4-5",
                        "effective_from": later.isoformat(),
                        "input_usd_per_mtok": "0.90",
                        "output_usd_per_mtok": "4.50",
                    }
                ),
            )
            await conn.commit()
        await eventually(lambda: _at_least(published_version(), before + 1))
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert not listener.listening


async def _at_least(version: Awaitable[int], floor: int) -> bool:
    return await version >= floor


async def test_the_listener_sets_no_timer_while_it_waits_and_still_hears_a_change(
    pool: AsyncConnectionPool, migrated: str
) -> None:
    # psycopg's own wait for notifications wakes every 0.1 s; the listener waits on the socket.
    heard: list[int] = []
    listener = CatalogueListener(migrated, lambda: heard.append(1))
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    loop = asyncio.get_running_loop()
    timers: list[object] = []
    real_call_at = loop.call_at

    def call_at(when: float, callback: object, *args: object, **kwargs: object) -> object:
        timers.append(callback)
        return real_call_at(when, callback, *args, **kwargs)  # type: ignore[arg-type]

    try:
        await eventually(lambda: listener.listening)
        await eventually(lambda: len(heard) == 1)  # at the connection: a change may have come
        loop.call_at = call_at  # type: ignore[method-assign]  # call_later goes through it
        await asyncio.sleep(0.6)
        loop.call_at = real_call_at  # type: ignore[method-assign]
        assert [t for t in timers if "psycopg" in getattr(t, "__module__", "")] == []
        later = datetime.now(UTC) + timedelta(days=3)
        async with pool.connection() as conn:
            await catalogue_store.add_model_price(
                conn,
                api.AddPriceCommand.model_validate(
                    {
                        "model": "claude-haiku-4-5",
                        "effective_from": later.isoformat(),
                        "input_usd_per_mtok": "0.95",
                        "output_usd_per_mtok": "4.75",
                    }
                ),
            )
            await conn.commit()
        await eventually(lambda: len(heard) >= 2)
    finally:
        loop.call_at = real_call_at  # type: ignore[method-assign]
        stop.set()
        await task
    assert not listener.listening
