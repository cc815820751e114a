"""The composition root: builds billing from its settings, starts and stops its parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue, default_catalogue
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.events.records_v1 import BALANCES_BUCKET
from aiapi_shared.outbox import Outbox
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import catalogue_store
from aiapi_billing.admission import Admitter
from aiapi_billing.batch_commands import BatchCommands, batch_routes
from aiapi_billing.catalogue_listener import CatalogueListener
from aiapi_billing.catalogue_publisher import CataloguePublisher
from aiapi_billing.catalogue_rpc import catalogue_routes
from aiapi_billing.commands import Commands
from aiapi_billing.console_rpc import console_routes
from aiapi_billing.consumers import Consumers
from aiapi_billing.deposits import DepositBook
from aiapi_billing.lease_commands import LeaseCommands
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.outbox import POLL_S, SnapshotWriter, outbox_relay
from aiapi_billing.price_book import PriceBook
from aiapi_billing.repository import ping
from aiapi_billing.rpc import QUEUE, Rpc
from aiapi_billing.settings import BillingSettings
from aiapi_billing.settlement import BatchResult, Settler
from aiapi_billing.sweeper import HoldSweeper

log = logging.getLogger("aiapi.billing")

SCHEMA = "billing"


async def prepare_database(dsn: str, catalogue: Catalogue) -> None:
    """Apply migrations, seed the price table and the live catalogue (all idempotent)."""
    await migrate(dsn, schema=SCHEMA, package="aiapi_billing.migrations")
    pool = open_pool(dsn, schema=SCHEMA, min_size=1, max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            await catalogue_store.seed_prices(conn, catalogue)
            await catalogue_store.seed(conn, catalogue)
    finally:
        await pool.close()


class Service:
    """Billing, running: consumers, request/reply subjects, outbox relay, snapshots, sweeper."""

    def __init__(self, settings: BillingSettings, catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        self.catalogue = catalogue or default_catalogue()
        self.stop_event = asyncio.Event()
        self.failed = asyncio.Event()  # never set today: the runner watches NATS itself
        self.bus: Bus | None = None
        self.pool: AsyncConnectionPool | None = None
        self.admit_pool: AsyncConnectionPool | None = None
        self.consumers: Consumers | None = None
        self.relay: Outbox | None = None
        self.snapshots: SnapshotWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        dsn = self.settings.database_dsn()
        await prepare_database(dsn, self.catalogue)
        pool = open_pool(dsn, schema=SCHEMA, min_size=2, max_size=self.settings.db_pool_size)
        await pool.open(wait=True, timeout=30.0)
        self.pool = pool
        # Admission's own connections: autocommit (its one statement is its transaction) and no
        # probe on checkout (a broken connection is retried once instead), so an admission costs
        # one round trip to PostgreSQL. Settlement and the rest keep the probed pool.
        admit_pool = open_pool(
            dsn,
            schema=SCHEMA,
            min_size=2,
            max_size=self.settings.db_admission_pool_size,
            autocommit=True,
            check_on_checkout=False,
        )
        await admit_pool.open(wait=True, timeout=30.0)
        self.admit_pool = admit_pool
        bus = await Bus.connect_as(self.settings, name="aiapi-billing")
        self.bus = bus
        await bus.ensure_streams()
        kv = await bus.ensure_kv(BALANCES_BUCKET)
        low = self.settings.low_balance_usd
        relay = self.relay = outbox_relay(pool, bus)
        # The snapshot writer only reads, one statement at a time: on the autocommit connections
        # no BEGIN and COMMIT around each read (two round trips of three).
        snapshots = self.snapshots = SnapshotWriter(admit_pool, kv)

        def after_commit(account_id: str) -> None:
            snapshots.mark(account_id)
            relay.wake()

        def after_settle(result: BatchResult) -> None:
            snapshots.settled(result.totals)
            relay.hand_over(result.queued)

        prices = PriceBook()
        live = LiveCatalogue(self.catalogue)
        async with pool.connection() as conn:
            await live.fresh(conn)
        admitter = Admitter(
            pool,
            live,
            prices,
            hold_ttl_s=self.settings.hold_ttl_s,
            admit_pool=admit_pool,
        )
        self.consumers = Consumers(
            pool=pool,
            bus=bus,
            settler=Settler(live, low),
            deposits=DepositBook(low),
            after_commit=after_commit,
            crash_after_commits=self.settings.billing_crash_after_commits,
            ack_wait_s=self.settings.consumer_ack_wait_s,
            batch=self.settings.settlement_batch,
            linger_s=self.settings.settlement_linger_s,
            linger_max_s=max(
                self.settings.settlement_linger_s, self.settings.settlement_linger_max_s
            ),
            linger_target=self.settings.settlement_linger_target,
            relay=relay,
            after_settle=after_settle,
        )
        sweeper = HoldSweeper(pool, low_threshold=low, on_change=after_commit)
        rpc = Rpc(
            pool,
            admitter,
            Commands(live, low),
            after_commit,
            snapshots.mark,
            leases=LeaseCommands(
                pool,
                live,
                hold_ttl_s=self.settings.hold_ttl_s,
                admit_for_s=self.settings.lease_admit_for_s,
                share_bps=self.settings.lease_balance_share_bps,
            ),
            concurrency=self.settings.rpc_concurrency,
        )
        await rpc.serve(bus)
        batch_commands = BatchCommands(
            pool,
            live,
            Settler(live, low),
            after_commit,
            hold_ttl_s=self.settings.batch_hold_ttl_s,
            opening_timeout_s=self.settings.batch_opening_timeout_s,
        )
        for subject, handler in batch_routes(batch_commands):
            await bus.serve(
                subject, handler, queue=QUEUE, concurrency=self.settings.rpc_concurrency
            )
        listener = CatalogueListener(dsn, lambda: publisher.changed())
        publisher = CataloguePublisher(
            pool,
            bus,
            live,
            interval_s=self.settings.catalogue_poll_s,
            heard=lambda: listener.listening,
        )
        for subject, handler in catalogue_routes(pool, publisher):
            await bus.serve(subject, handler, queue=QUEUE)
        for subject, handler in console_routes(pool, bus):
            await bus.serve(subject, handler, queue=QUEUE)
        await snapshots.mark_recent()
        stop = self.stop_event
        self._tasks = [
            *self.consumers.tasks(stop),
            asyncio.create_task(relay.run(stop, poll_s=POLL_S), name="outbox"),
            asyncio.create_task(publisher.run(stop), name="catalogue"),
            asyncio.create_task(listener.run(stop), name="catalogue-listener"),
            asyncio.create_task(snapshots.run(stop), name="snapshots"),
            asyncio.create_task(
                sweeper.run(stop, self.settings.hold_sweep_interval_s), name="sweeper"
            ),
        ]
        log.info("billing started")

    async def ready(self) -> bool:
        return await self.healthy()

    def render_metrics(self) -> bytes:
        """The settlement counters and the consumers' redelivery and dead-letter counters
        (``aiapi_consumer_*_total``), in Prometheus text."""
        counters = vars(self.consumers.counters) if self.consumers else {}
        lines = [f"aiapi_billing_{name}_total {value}\n" for name, value in counters.items()]
        consumers = self.bus.metrics.render() if self.bus is not None else b""
        return "".join(lines).encode() + consumers

    async def healthy(self) -> bool:
        if self.bus is None or self.pool is None or not self.bus.is_connected:
            return False
        try:
            async with self.pool.connection(timeout=1.0) as conn:
                await ping(conn)
        except Exception:  # noqa: BLE001 (any failure means "not healthy", which is the answer)
            return False
        return True

    async def stop(self) -> None:
        self.stop_event.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10.0)
            for task in pending:
                task.cancel()
        if self.bus is not None:
            await self.bus.close()
        for pool in (self.admit_pool, self.pool):
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.close()
