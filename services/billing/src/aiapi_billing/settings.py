"""Billing's settings: where its database is, its internal port, hold and balance thresholds."""

from __future__ import annotations

from typing import ClassVar

from aiapi_shared.lifecycle import StartupRefused
from aiapi_shared.money import Money
from aiapi_shared.settings import BaseServiceSettings
from pydantic import Field


class BillingSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "billing"

    # Billing's only listener is the internal one (liveness, readiness, metrics): its API is NATS.
    internal_port: int = Field(default=9082, ge=0, le=65535)
    hold_ttl_s: int = Field(default=600, ge=5, description="an unsettled hold expires after this")
    # Message Batches (docs/billing.md, "Batches"): a batch's hold lasts past the upstream's 24 h
    # expiry, so only a batch no edge can reach any more has its hold expire unbilled; a batch
    # never bound to an upstream id (its edge stopped in between) is abandoned after the timeout.
    batch_hold_ttl_s: int = Field(default=48 * 3600, ge=60)
    batch_opening_timeout_s: float = Field(default=600.0, gt=0)
    hold_sweep_interval_s: float = Field(default=5.0, gt=0)
    # How often each replica checks the catalogue's version (plans, prices, accounts' terms):
    # a change made on another replica, the CLI or psql reaches admission and the edges within it.
    catalogue_poll_s: float = Field(default=0.25, gt=0, le=1.0)
    # A lease (docs/billing.md, Leases) is admitted with for this long (each renewal starts a new
    # window), then expires hold_ttl_s later unless closed; it takes at most this share of the
    # available balance. An edge closes a lease its account stopped using well before (30 s).
    # 60 s (was 30): a lightly used account's lease is renewed about once per 80% of a window
    # (one billing transaction each), so half as often; the price is that a lease sized for a
    # burst keeps its slices (refused to other replicas) up to a window before a renewal sizes
    # it down, and an edge killed outright leaves its leases held 30 s longer.
    lease_admit_for_s: float = Field(default=60.0, gt=0)
    lease_balance_share_bps: int = Field(default=5000, ge=1, le=10_000)
    low_balance_usd: Money = Field(default=1_000_000_000, description="BalanceLow below this")
    db_pool_size: int = Field(default=10, ge=2)
    db_admission_pool_size: int = Field(default=8, ge=2)
    rpc_concurrency: int = Field(default=16, ge=1, description="requests answered at once")
    consumer_ack_wait_s: float = Field(default=30.0, ge=1.0)
    settlement_batch: int = Field(default=256, ge=1, le=1000)
    # After a short settlement batch, wait before fetching again: usage events that arrive one
    # at a time (light traffic) then share one transaction, one commit, one outbox pass and one
    # snapshot write instead of paying for them each (docs/billing.md, the whole money path).
    # The wait adapts (aiapi_shared.linger): from settlement_linger_s it doubles while batches
    # come in short, up to settlement_linger_max_s (the most it delays a settlement), and is
    # skipped after a full batch. Equal values: a fixed linger.
    settlement_linger_s: float = Field(default=0.05, ge=0.0, le=1.0)
    # 1 s (was 0.5): at 10 requests/s a batch cycle (transaction, outbox pass, snapshot write,
    # fetch) served 5 events, now 10: CPU per request there -15% (docs/performance.md).
    settlement_linger_max_s: float = Field(default=1.0, ge=0.0, le=2.0)
    # The batch the linger steers towards: it grows while batches come in shorter than this. A
    # settlement batch has a fixed cost (a transaction of ~10 statements and its commit, an
    # outbox pass, its acks) several times an event's, so a busy billing gathers ~128 events
    # per batch rather than the bus's default 32; the delay stays within the bounds above.
    settlement_linger_target: int = Field(default=128, ge=1, le=1000)
    # Test-only: exit the process (as a crash would) right after the Nth usage commit, before its
    # ack, so the kill-between-commit-and-ack window is reachable from a test. 0 disables it.
    billing_crash_after_commits: int = Field(default=0, ge=0)

    def database_dsn(self) -> str:
        if self.database_url is None:
            raise StartupRefused("AIAPI_DATABASE_URL is required by billing")
        return self.database_url.get_secret_value()
