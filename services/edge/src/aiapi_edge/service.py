"""The composition root: builds the edge's parts from its settings and runs their lifecycles.

Nothing happens at import time; :class:`EdgeService` starts on :meth:`start` and drains on
:meth:`stop`. It does not wait for NATS (docs/edge.md, "Cold start"): its mirrors are restored
from disk, NATS is connected in the background, and until it is there requests are served on
the restored mirrors and the offline allowance, their usage spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue, default_catalogue
from aiapi_shared.edge_api import UPSTREAM_TEST_SUBJECT
from aiapi_shared.events.records_v1 import (
    BALANCES_BUCKET,
    CATALOGUE_BUCKET,
    KEYS_BUCKET,
    UPSTREAM_KEYS_BUCKET,
)

from aiapi_edge.admission import Admitter
from aiapi_edge.allowance import OfflineAllowance
from aiapi_edge.allowance_settlement import release_settled
from aiapi_edge.anthropic_route import MessagesRoute
from aiapi_edge.batch_billing import BatchBilling
from aiapi_edge.batch_tracker import BatchTracker
from aiapi_edge.batches_route import BatchesRoute
from aiapi_edge.beta_policy import BetaPolicy, parse_list
from aiapi_edge.catalogue_mirror import CatalogueMirror
from aiapi_edge.catalogue_routes import ModelsCatalogue
from aiapi_edge.count_limit import PerKeyRate
from aiapi_edge.gateway import Gateway
from aiapi_edge.inference import Inference
from aiapi_edge.lease_client import Leases
from aiapi_edge.metrics import Metrics
from aiapi_edge.mirror_store import MirrorStore
from aiapi_edge.mirrors import BalanceMirror, KeyMirror
from aiapi_edge.openai_route import ChatDialect, OpenAIRoute
from aiapi_edge.pool import UpstreamPool
from aiapi_edge.response_store import ResponseStore
from aiapi_edge.responses_route import ResponsesDialect
from aiapi_edge.settings import EdgeSettings
from aiapi_edge.spool import Row, Spool
from aiapi_edge.spool_claim import Claim, adopt_orphans, claim
from aiapi_edge.upstream import Upstream
from aiapi_edge.upstream_keys import UpstreamKeys
from aiapi_edge.upstream_status import UpstreamStatus
from aiapi_edge.worker_process import report_started

log = logging.getLogger("aiapi.edge")

# How long a start waits for the live key mirror: without a restored one, long enough for a
# NATS that is up to deliver it; with one, a moment (the live one wins when NATS is there).
_MIRROR_WAIT_S = 5.0
_RESTORED_MIRROR_WAIT_S = 1.0
_STREAMS_RETRY_S = 1.0


class EdgeService:
    def __init__(self, settings: EdgeSettings, catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        edge_id = settings.edge_id or f"edge-{secrets.token_hex(4)}"
        # Each worker holds leases of its own: billing must tell them apart.
        self.edge_id = (
            f"{edge_id}-w{settings.edge_worker_index}"
            if settings.edge_worker_count > 1
            else edge_id
        )
        self._claim: Claim | None = None
        self.metrics = Metrics()
        self.keys = KeyMirror()
        self.balances = BalanceMirror()
        self.leases: Leases | None = None
        # The shipped catalogue until billing's live one (operator-added models, aliases and
        # prices) arrives from KV; then each newer snapshot replaces it.
        self.catalogue = catalogue or default_catalogue()
        self.models = ModelsCatalogue(self.catalogue, include_aliases=settings.edge_list_aliases)
        self.catalogue_mirror = CatalogueMirror(self._use_catalogue)
        self.mirror_store = MirrorStore(
            settings.spool_dir,
            max_bytes=settings.edge_mirror_max_bytes,
            max_age_s=settings.edge_mirror_max_age_s,
        )
        self.spool = Spool(
            settings.spool_dir,
            max_rows=settings.edge_spool_max_rows,
            max_bytes=settings.edge_spool_max_bytes,
            min_free_bytes=settings.edge_spool_min_free_bytes,
            fsync=settings.edge_spool_fsync,
            sync_interval_s=settings.edge_spool_sync_interval_s,
            sync_rows=settings.edge_spool_sync_rows,
        )
        self.pool = UpstreamPool(settings.upstream_keys(), affinity=settings.edge_key_affinity)
        seal = settings.upstream_seal_private_key
        # The operator's changes to the pool (aiapi_upstream_keys) replace its keys as they come.
        self.upstream_keys = UpstreamKeys(
            settings.upstream_keys(),
            default_base_url=settings.upstream_url,
            private_key=seal.get_secret_value() if seal is not None else None,
            apply=self.pool.replace,
        )
        self.upstream_keys_ready = asyncio.Event()
        self.upstream = Upstream(
            self.pool,
            self.metrics,
            attempts=settings.edge_upstream_attempts,
            connect_timeout_s=settings.edge_upstream_connect_timeout_s,
            read_timeout_s=settings.edge_upstream_read_timeout_s,
            wait_budget_s=settings.edge_overload_retry_s,
        )
        self.keys_ready = asyncio.Event()
        self.failed = asyncio.Event()  # never set today: the runner watches NATS itself
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bus: Bus | None = None
        self.messages: MessagesRoute | None = None
        self.chat: OpenAIRoute | None = None
        self.responses: OpenAIRoute | None = None
        self.batches: BatchesRoute | None = None

    def _use_catalogue(self, catalogue: Catalogue) -> None:
        """Swap what is sold: each request reads these attributes once, so it sees one or the
        other catalogue, never a mix."""
        self.models = ModelsCatalogue(catalogue, include_aliases=self.settings.edge_list_aliases)
        self.catalogue = catalogue
        if self.messages is not None:  # started: the gateway exists
            self.gateway.catalogue = catalogue

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "EdgeService.start() first"
        return self._bus

    async def ready(self) -> bool:
        """It can serve: started and the key records known, live or restored from a snapshot
        still young enough. Not NATS: without it the edge still serves, on its leases and the
        offline allowance, spooling usage (docs/edge.md)."""
        return self.messages is not None and (self.keys.live or self.keys.restored_usable)

    def render_metrics(self) -> bytes:
        return self.metrics.render(self.refresh_metrics)

    @property
    def nats_connected(self) -> bool:
        return self._bus is not None and self._bus.is_connected

    async def start(self) -> None:
        s = self.settings
        # This worker's spool is its own: wait for a predecessor of the same index to let go.
        self._claim = await claim(s.spool_dir, timeout_s=s.start_timeout_s)
        self._bus = Bus.connecting_as(s, name=self.edge_id)
        await self.spool.open()
        watched = {
            KEYS_BUCKET: self.mirror_store.tee(KEYS_BUCKET, self.keys.on_change),
            BALANCES_BUCKET: self.mirror_store.tee(BALANCES_BUCKET, self.balances.on_change),
            CATALOGUE_BUCKET: self.mirror_store.tee(
                CATALOGUE_BUCKET, self.catalogue_mirror.on_change
            ),
            # The operator's pool changes: sealed keys (never in clear), disabled env keys.
            UPSTREAM_KEYS_BUCKET: self.mirror_store.tee(
                UPSTREAM_KEYS_BUCKET, self.upstream_keys.on_change
            ),
        }
        restored_for_s = await self.mirror_store.restore()
        if restored_for_s is not None:
            self.keys.restored(restored_for_s)
        await self.upstream.start()
        if s.edge_leases:
            self.leases = Leases(
                self._bus,
                self.metrics,
                edge_id=self.edge_id,
                timeout_s=s.edge_admission_timeout_s,
                max_amount=s.lease_max_amount,
                max_requests=s.edge_lease_max_requests,
                rpc_timeout_s=s.edge_lease_timeout_s,
            )
        allowance = OfflineAllowance(s.offline_allowance)
        admitter = Admitter(
            self._bus,
            self.balances,
            allowance,
            self.metrics,
            timeout_s=s.edge_admission_timeout_s,
            leases=self.leases,
        )
        gateway = Gateway(
            keys=self.keys,
            catalogue=self.catalogue,
            admitter=admitter,
            spool=self.spool,
            edge_id=self.edge_id,
            betas=BetaPolicy.from_settings(s.edge_beta_deny, s.edge_beta_allow),
            unpriced_allowed=parse_list(s.edge_unpriced_allow),
            balances=self.balances,
        )
        self.gateway = gateway
        inference = Inference(
            gateway,
            self.upstream,
            ping_interval=s.edge_ping_interval_s,
            drain_s=s.edge_disconnect_drain_s,
        )
        self.messages = MessagesRoute(
            gateway,
            self.upstream,
            inference,
            count_rate=PerKeyRate(s.edge_count_tokens_per_minute),
        )
        self.chat = OpenAIRoute(gateway, inference, ChatDialect())
        store = (
            ResponseStore(s.edge_responses_store_bytes) if s.edge_responses_store_bytes else None
        )
        self.responses = OpenAIRoute(gateway, inference, ResponsesDialect(store))
        batch_billing = BatchBilling(self._bus, s.edge_admission_timeout_s * 4)
        tracker = BatchTracker(
            batch_billing,
            self.upstream,
            edge_id=self.edge_id,
            tick_s=s.edge_batch_tick_s,
            poll_s=s.edge_batch_poll_s,
            lease_s=s.edge_batch_lease_s,
            chunk=s.edge_batch_chunk,
        )
        self.batches = BatchesRoute(gateway, self.upstream, batch_billing, tracker)
        bus = self._bus
        if s.edge_worker_index == 0:
            # One tracker per edge: the workers share its keys, and each claim is a round trip
            # to billing (and a query) every tick, at rest too. A killed worker 0 is restarted.
            self._spawn(tracker.run(self._stop))
        self._spawn(self._declare_streams(bus))
        ready_events = {
            KEYS_BUCKET: self.keys_ready,
            UPSTREAM_KEYS_BUCKET: self.upstream_keys_ready,
        }
        for bucket, on_change in watched.items():
            caught_up = ready_events.get(bucket) or asyncio.Event()
            self._spawn(bus.watch_kv(bucket, on_change, ready=caught_up, stop=self._stop))
            self._spawn(self._confirm(bucket, caught_up))
        self._spawn(
            self.mirror_store.keep(
                self._mirrors_live, self._stop, interval_s=s.edge_mirror_save_interval_s
            )
        )
        status = UpstreamStatus(
            bus,
            self.upstream,
            self.upstream_keys,
            lambda: self.catalogue,
            edge_id=self.edge_id,
            every_s=s.edge_upstream_report_s,
        )
        self._spawn(self._serve_when_connected(UPSTREAM_TEST_SUBJECT, status.test))
        self._spawn(status.run(self._stop))
        self._spawn(
            self.spool.relay(
                self._publish,
                self._stop,
                linger_s=s.edge_relay_linger_s,
                linger_max_s=max(s.edge_relay_linger_s, s.edge_relay_linger_max_s),
            )
        )
        self._spawn(
            adopt_orphans(
                s.spool_root,
                s.edge_worker_index,
                s.edge_worker_count,
                self._publish,
                self._stop,
                max_rows=s.edge_spool_max_rows,
            )
        )
        self._spawn(
            release_settled(allowance, bus, self._stop, timeout_s=s.edge_admission_timeout_s * 4)
        )
        if self.leases is not None:
            self._spawn(self.leases.sweep(self._stop))
        wait_s = _MIRROR_WAIT_S if restored_for_s is None else _RESTORED_MIRROR_WAIT_S
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self.keys_ready.wait()
                await self.upstream_keys_ready.wait()
        if not len(self.pool):
            log.warning(
                "no upstream key in the pool: inference requests get 502 until one is added"
            )
        if s.edge_started_fd is not None:
            report_started(s.edge_started_fd)
        log.info(
            "edge started",
            extra={
                "edge_id": self.edge_id,
                "worker": f"{s.edge_worker_index + 1}/{s.edge_worker_count}",
                "keys": len(self.keys),
                "key_mirror": "live" if self.keys.live else (
                    "restored" if self.keys.restored_usable else "none: not ready until NATS"
                ),
                "nats_connected": self.nats_connected,
                "upstream_keys": len(self.pool),
                "spool_depth": self.spool.depth,
            },
        )  # fmt: skip

    async def _declare_streams(self, bus: Bus) -> None:
        """The streams the relay publishes to, declared once NATS is there."""
        while await bus.until_connected(self._stop):
            try:
                await bus.ensure_streams()
                return
            except Exception as error:  # noqa: BLE001 (NATS away again: the next round retries)
                log.warning("streams not declared yet (%s); retrying", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=_STREAMS_RETRY_S)

    async def _serve_when_connected(
        self, subject: str, handler: Callable[[bytes], Awaitable[bytes]]
    ) -> None:
        """Answer ``subject`` from the first connection on (the client subscribes again after
        each reconnect)."""
        if await self.bus.until_connected(self._stop):
            await self.bus.serve(subject, handler, queue="edge", concurrency=4)

    async def _confirm(self, bucket: str, caught_up: asyncio.Event) -> None:
        """Once ``bucket``'s watch delivered its current entries, the mirror is KV's again:
        restored entries it did not deliver are gone, and the key mirror is live."""
        await caught_up.wait()
        self.mirror_store.confirm(bucket)
        if bucket == KEYS_BUCKET:
            self.keys.confirmed()

    def _mirrors_live(self) -> bool:
        return self.nats_connected and self.keys.live

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _publish(self, rows: list[Row]) -> list[bool]:
        """A relay round to JetStream, its acks awaited together (one reply subscription)."""
        acked = [failure is None for failure in await self.bus.publish_batch(rows, timeout_s=2.0)]
        self.metrics.usage_published.inc(sum(acked))
        return acked

    async def stop(self) -> None:
        if self.leases is not None and self.bus.is_connected:
            # Hand the leases back so their unreserved money returns to the accounts now.
            await self.leases.close_all(timeout_s=2.0)
        # Give the relay time to publish what is spooled (AIAPI_EDGE_SPOOL_DRAIN_S); what
        # remains goes after a restart (the spool's volume outlives the process).
        deadline = asyncio.get_running_loop().time() + self.settings.edge_spool_drain_s
        while self.spool.depth and self.bus.is_connected:
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.05)
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._mirrors_live():
            await self.mirror_store.save()  # what a restart finds, as of now
        await self.upstream.close()
        await self.spool.close()
        if self._bus is not None:
            await self._bus.close()
        if self._claim is not None:
            self._claim.release()

    def refresh_metrics(self) -> None:
        self.metrics.spool_depth.set(self.spool.depth)
        self.metrics.spool_unwritten.set(self.spool.unwritten)
        counts: dict[str, int] = {}
        for _, health in self.pool.health():
            counts[health] = counts.get(health, 0) + 1
        for health in ("healthy", "resting", "open", "half_open", "disabled"):
            self.metrics.pool_health.labels(health).set(counts.get(health, 0))
