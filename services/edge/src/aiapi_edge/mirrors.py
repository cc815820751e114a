"""In-memory mirrors of the KV buckets the edge reads on every request: keys and balances.

Nothing on the hot path leaves the process to authenticate: the edge hashes the presented key
and looks the digest up here. The mirrors are fed by KV watches (``Bus.watch_kv``), so a revoked
key or a suspended account stops working as soon as the update arrives (milliseconds), on every
replica. They hold digests, never keys.

The key mirror answers only once it knows the keys: live (its watch delivered the bucket's
current entries) or restored from disk (:mod:`.mirror_store`) for as long as the snapshot is
young enough to say which keys are revoked. Until then, and once a restored snapshot is too old,
a lookup is refused (503): a valid key must never be told it is invalid.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import BalanceSnapshot, KeyRecord
from pydantic import ValidationError

from aiapi_edge.errors import GatewayError

log = logging.getLogger("aiapi.edge.mirrors")

KEYS_UNKNOWN_RETRY_AFTER_S = 5


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def keys_unknown() -> GatewayError:
    return GatewayError(
        Problem.UNAVAILABLE,
        "The gateway cannot verify API keys right now.",
        retry_after=KEYS_UNKNOWN_RETRY_AFTER_S,
    )


class KeyMirror:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._clock = clock
        self._live = False
        self._restored_until: float | None = None  # clock() past which a restored one is stale

    def __len__(self) -> int:
        return len(self._records)

    def lookup(self, digest: str) -> KeyRecord | None:
        """The key's record, None when there is none; :func:`keys_unknown` (503) while the
        mirror cannot tell."""
        if not self._live and not self.restored_usable:
            raise keys_unknown()
        return self._records.get(digest)

    @property
    def live(self) -> bool:
        return self._live

    @property
    def restored_usable(self) -> bool:
        """Serving from a restored snapshot that is still young enough."""
        until = self._restored_until
        return until is not None and self._clock() < until

    def restored(self, usable_for_s: float) -> None:
        """Its records come from a snapshot on disk, usable for this long unless confirmed."""
        self._restored_until = self._clock() + usable_for_s

    def confirmed(self) -> None:
        """The watch delivered the bucket's current entries: the mirror is live from now on
        (an outage later keeps it, as the last word of KV)."""
        self._live = True
        self._restored_until = None

    def on_change(self, digest: str, value: bytes | None) -> None:
        if value is None:
            self._records.pop(digest, None)
            return
        try:
            self._records[digest] = KeyRecord.model_validate_json(value)
        except ValidationError:
            # A record this edge cannot read must not keep an older, maybe active, one alive.
            self._records.pop(digest, None)
            log.error("unreadable key record dropped", extra={"key_digest": digest[:12]})


class BalanceMirror:
    def __init__(self) -> None:
        self._snapshots: dict[str, BalanceSnapshot] = {}

    def get(self, account_id: str) -> BalanceSnapshot | None:
        return self._snapshots.get(account_id)

    def on_change(self, account_id: str, value: bytes | None) -> None:
        if value is None:
            self._snapshots.pop(account_id, None)
            return
        try:
            snapshot = BalanceSnapshot.model_validate_json(value)
        except ValidationError:
            log.error("unreadable balance snapshot ignored", extra={"account_id": account_id})
            return
        current = self._snapshots.get(account_id)
        if current is None or snapshot.version >= current.version:
            self._snapshots[account_id] = snapshot
