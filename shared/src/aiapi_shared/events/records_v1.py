"""Documents kept in NATS KV buckets: the edge's in-memory mirrors are fed from these.

``aiapi_keys``: one :class:`KeyRecord` per API key, keyed by the key's SHA-256 hex digest (the edge
hashes what the client sends and looks the digest up; no key is ever stored). Written by accounts.

``aiapi_balances``: one :class:`BalanceSnapshot` per account, keyed by account id. Written by
billing; ``version`` only grows, and a reader keeps the newer of two.

``aiapi_catalogue``: one :class:`CatalogueSnapshot` under ``current``. Written by billing.
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
