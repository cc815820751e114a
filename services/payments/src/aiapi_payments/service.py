"""The composition root: `PaymentsService` wires the parts; the shared runner runs it.

Start-up order: migrations, the database pool, NATS (streams), the chain checks (chain id,
genesis), then the API subjects and the tasks: one watch loop per enabled chain, the price
fetcher (when sources are configured) and the outbox relay. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from aiapi_shared.bus import Bus
from aiapi_shared.db import migrate, open_pool
from aiapi_shared.lifecycle import StartupRefused
from aiapi_shared.outbox import Outbox
from psycopg_pool import AsyncConnectionPool
from web3 import AsyncHTTPProvider, AsyncWeb3

from aiapi_payments.api import PaymentsApi
from aiapi_payments.balances import BalanceReader
from aiapi_payments.bitcoin import BitcoinWatcher, EsploraBackend, check_genesis
from aiapi_payments.config import EvmChainConfig, PaymentsConfig
from aiapi_payments.depeg import DepegGuard
from aiapi_payments.ethereum import ChainMismatch, check_chain_id
from aiapi_payments.model import Asset
from aiapi_payments.outbox import outbox_relay
from aiapi_payments.price_sources import PriceFetcher
from aiapi_payments.repository import Repository, ping
from aiapi_payments.settings import PaymentsSettings
from aiapi_payments.tracking import BitcoinTracking, EvmTracking, evm_watcher

log = logging.getLogger("aiapi.payments")

_HTTP_TIMEOUT = httpx.Timeout(10.0)
_QUOTE_RETENTION = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class PaymentsService:
    def __init__(self, settings: PaymentsSettings, config: PaymentsConfig) -> None:
        self.settings = settings
        self.config = config
        self.failed = asyncio.Event()  # set when the process must exit non-zero
        self.started = False
        # network -> when its watcher last finished a cycle (the chain watcher lag alert)
        self.watched_at: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.bus: Bus | None = None
        self.pool: AsyncConnectionPool | None = None
        self._nodes: dict[str, AsyncWeb3[Any]] = {}  # per EVM-style network
        self._esplora: EsploraBackend | None = None
        band = config.depeg_band
        self.guard = None if band is None else DepegGuard(band, config.assets, config.price_max_age)

    async def start(self) -> None:
        if self.settings.database_url is None:
            raise StartupRefused("AIAPI_DATABASE_URL is required")
        url = self.settings.database_url.get_secret_value()
        await migrate(url, schema="payments", package="aiapi_payments.migrations")
        self.pool = open_pool(url, schema="payments")
        await self.pool.open(wait=True, timeout=30)
        self._closers.append(self.pool.close)
        repository = Repository(self.pool)
        self.bus = await Bus.connect_as(self.settings, name="aiapi-payments")
        self._closers.append(self.bus.close)
        await self.bus.ensure_streams()
        relay = outbox_relay(self.pool, self.bus)
        trackings = [await self._evm(repository, chain) for chain in self.config.evm]
        trackings.append(await self._bitcoin(repository))
        balances = BalanceReader(self.config, self._nodes, self._esplora)
        await PaymentsApi(repository, self.config, utc_now, balances).serve(self.bus)
        self._spawn("outbox", relay.run(self._stop, poll_s=self.settings.outbox_interval_s))
        for name, tracking, interval in filter(None, trackings):
            self._spawn(name, self._watch_loop(name, tracking, interval, relay))
        if self.config.price_sources and self._priced_assets():
            self._spawn("prices", self._price_loop(repository))
        self.started = True
        log.info(
            "payments started: networks %s",
            ", ".join(n.value for n in self.config.networks) or "none (deposits off)",
        )

    async def _evm(
        self, repository: Repository, chain: EvmChainConfig
    ) -> tuple[str, Any, float] | None:
        w3: AsyncWeb3[Any] = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
        self._closers.append(w3.provider.disconnect)
        self._nodes[chain.network] = w3
        try:
            await check_chain_id(w3, chain.chain_id, chain.chain_id_setting)
        except ChainMismatch as error:
            raise StartupRefused(f"{chain.network}: {error}") from None

        tracking = EvmTracking(
            repository, self.config, chain, partial(evm_watcher, w3, chain), utc_now, self.guard
        )
        return chain.network.value, tracking, chain.poll_interval_s

    async def _bitcoin(self, repository: Repository) -> tuple[str, Any, float] | None:
        chain = self.config.bitcoin
        if chain is None:
            return None
        client = httpx.AsyncClient(base_url=chain.esplora_url, timeout=_HTTP_TIMEOUT)
        self._closers.append(client.aclose)
        backend = EsploraBackend(client)
        self._esplora = backend
        await check_genesis(backend, chain.network.value)
        tracking = BitcoinTracking(repository, self.config, chain, BitcoinWatcher(backend), utc_now)
        return "bitcoin", tracking, chain.poll_interval_s

    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s died; the process exits", name)
                self.failed.set()

        self._tasks.append(asyncio.create_task(guarded(), name=f"payments-{name}"))

    async def _watch_loop(self, name: str, tracking: Any, interval_s: float, relay: Outbox) -> None:
        """Poll until stopped; catch up without pausing; back off (bounded) after failures."""
        failures = 0
        while not self._stop.is_set():
            try:
                caught_up, events = await tracking.cycle()
                failures = 0
                self.watched_at[name] = time.time()
            except Exception as error:  # noqa: BLE001 (a node or database outage: retry)
                failures += 1
                log.warning(
                    "%s watch cycle failed (%s): %s",
                    name,
                    type(error).__name__,
                    self._redacted(str(error)),
                )
                caught_up, events = True, 0
            if events:
                relay.wake()
            if caught_up:
                pause = min(interval_s * (2 ** min(failures, 5)), 60.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=pause)

    def _redacted(self, text: str) -> str:
        """Node URLs often carry a provider's API key (Infura, Alchemy): never log them."""
        urls = [chain.rpc_url for chain in self.config.evm] + [self.settings.btc_esplora_url]
        for url in urls:
            if url:
                text = text.replace(url.rstrip("/"), "<configured URL>")
        return text

    async def _price_loop(self, repository: Repository) -> None:
        assets = self._priced_assets()
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as client:
            fetcher = PriceFetcher(self.config.price_sources, client)
            while not self._stop.is_set():
                try:
                    for asset in assets:
                        quotes = await fetcher.fetch(asset)
                        await repository.add_quotes(
                            quotes, prune_before=utc_now() - _QUOTE_RETENTION
                        )
                except Exception as error:  # noqa: BLE001 (a database outage: retry)
                    log.warning("price fetch failed (%s)", type(error).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), timeout=self.settings.price_poll_interval_s
                    )

    def _priced_assets(self) -> list[Asset]:
        """ETH and BTC for their rates; the stablecoins too when the depeg guard watches them."""
        return [a for a in self.config.assets if not a.pegged or self.guard is not None]

    async def ready(self) -> bool:
        return self.started and not self.failed.is_set() and await self.healthy()

    def render_metrics(self) -> bytes:
        """The enabled networks, the pegged assets the depeg guard paused, and the consumers'
        redelivery and dead-letter counters (Prometheus text)."""
        lines = [
            f'aiapi_payments_network_enabled{{network="{n.value}"}} 1\n'
            for n in self.config.networks
        ]
        if self.guard is not None:
            for asset in sorted(a for a in self.config.assets if a.pegged):
                paused = int(asset in self.guard.paused)
                lines.append(f'aiapi_payments_depeg_paused{{asset="{asset.value}"}} {paused}\n')
        # When each chain watcher last completed a cycle: a watcher that stops (node down,
        # stuck) shows as a growing time() minus this value (the chain watcher lag alert).
        for name, at in sorted(self.watched_at.items()):
            lines.append(
                f'aiapi_payments_watch_success_timestamp_seconds{{network="{name}"}} {at:.3f}\n'
            )
        consumers = self.bus.metrics.render() if self.bus is not None else b""
        return "".join(lines).encode() + consumers

    async def healthy(self) -> bool:
        if self.bus is None or self.pool is None or not self.bus.is_connected:
            return False
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await ping(conn)
        except Exception:  # noqa: BLE001 (any failure means "not healthy")
            return False
        return True

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()
