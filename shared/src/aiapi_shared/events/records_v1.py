"""Documents kept in NATS KV buckets: the edge's in-memory mirrors are fed from these.

``aiapi_keys``: one :class:`KeyRecord` per API key, keyed by the key's SHA-256 hex digest (the edge
hashes what the client sends and looks the digest up; no key is ever stored). Written by accounts.

``aiapi_balances``: one :class:`BalanceSnapshot` per account, keyed by account id. Written by
billing; ``version`` only grows, and a reader keeps the newer of two.

``aiapi_catalogue``: one :class:`CatalogueSnapshot` under ``current``. Written by billing.

``aiapi_upstream_keys``: one :class:`UpstreamKeyRecord` per upstream key of the pool, keyed by its
id. Written by accounts (the operator API); the key itself travels sealed to the edges' public key
(:mod:`aiapi_shared.upstream_seal`). A key of ``AIAPI_UPSTREAM_API_KEYS`` has no sealed key: its
record only changes how the edges use it (weight, models, enabled, removed).

``aiapi_upstream_status``: one :class:`UpstreamStatusReport` per edge replica, keyed by edge id,
rewritten every few seconds: each key's health and what it served since that edge started.
Written by the edges, read by accounts (the operator API adds them up).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import AwareDatetime, Field, ValidationError

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.accounts_v1 import AccountStatus, PlanName
from aiapi_shared.events.base import Record
from aiapi_shared.money import Money

log = logging.getLogger("aiapi.catalogue")

KEYS_BUCKET = "aiapi_keys"
BALANCES_BUCKET = "aiapi_balances"


class KeyRecord(Record):
    key_id: str
    account_id: str
    plan: PlanName
    key_status: Literal["active", "revoked"]
    account_status: AccountStatus
    requests_per_minute: int = Field(gt=0)
    tokens_per_minute: int = Field(gt=0)
    updated_at: AwareDatetime

    @property
    def usable(self) -> bool:
        return self.key_status == "active" and self.account_status == "active"


class BalanceSnapshot(Record):
    account_id: str
    balance: Money
    available: Money
    version: int = Field(ge=0)
    as_of: AwareDatetime


CATALOGUE_BUCKET = "aiapi_catalogue"
CATALOGUE_KEY = "current"


class CatalogueSnapshot(Record):
    """What is sold right now: billing's live catalogue (models, their prices, aliases, plans).

    Kept in ``aiapi_catalogue`` under ``current``; ``version`` only grows. The edge serves
    ``/v1/models`` and admits models from it, so an operator's change needs no deploy.
    """

    version: int = Field(ge=0)
    published_at: AwareDatetime
    catalogue: Catalogue


def newer_snapshot(key: str, value: bytes | None, held: int) -> CatalogueSnapshot | None:
    """The catalogue snapshot a change of ``aiapi_catalogue`` carries, when it is one, parses and
    is newer than the version ``held`` (a reader keeps the last good one otherwise)."""
    if key != CATALOGUE_KEY or value is None:
        return None
    try:
        snapshot = CatalogueSnapshot.model_validate_json(value)
    except ValidationError:
        log.error("unreadable catalogue snapshot ignored")
        return None
    return snapshot if snapshot.version > held else None


UPSTREAM_KEYS_BUCKET = "aiapi_upstream_keys"
UPSTREAM_STATUS_BUCKET = "aiapi_upstream_status"
# A status report not rewritten for this long is gone (its edge stopped); the bucket's entries
# expire after it too.
UPSTREAM_STATUS_TTL_S = 30.0
UpstreamKeySource = Literal["operator", "env"]


class UpstreamKeyRecord(Record):
    """How the edges use one upstream key. ``sealed_key`` is None for a key of the edges' own
    ``AIAPI_UPSTREAM_API_KEYS`` (``source`` "env"; its id is the key's fingerprint)."""

    id: str
    source: UpstreamKeySource
    sealed_key: str | None = None
    hint: str
    base_url: str | None = None  # None: the edge's AIAPI_UPSTREAM_URL
    organization: str = ""
    weight: int = Field(default=1, ge=1, le=1000)
    enabled: bool = True
    removed: bool = False  # only for an "env" key: the operator took it out of the pool
    models: tuple[str, ...] = ()  # empty: every model
    updated_at: AwareDatetime


class UpstreamError(Record):
    at: AwareDatetime
    outcome: str
    detail: str


class UpstreamKeyStatus(Record):
    """One key as one edge sees it; the counters run from that edge's start."""

    id: str
    source: UpstreamKeySource
    hint: str
    base_url: str
    organization: str = ""
    weight: int = 1
    enabled: bool = True
    models: tuple[str, ...] = ()
    health: str
    requests: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    list_cost: Money = 0
    recent_errors: tuple[UpstreamError, ...] = ()


class UpstreamStatusReport(Record):
    edge_id: str
    reported_at: AwareDatetime
    started_at: AwareDatetime
    keys: tuple[UpstreamKeyStatus, ...] = ()
