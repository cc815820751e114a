"""In-memory mirrors of the KV buckets the edge reads on every request: keys and balances.

Nothing on the hot path leaves the process to authenticate: the edge hashes the presented key
and looks the digest up here. The mirrors are fed by KV watches (``Bus.watch_kv``), so a revoked
key or a suspended account stops working as soon as the update arrives (milliseconds), on every
replica. They hold digests, never keys.
"""

from __future__ import annotations

import hashlib
import logging

from aiapi_shared.events.records_v1 import BalanceSnapshot, KeyRecord
from pydantic import ValidationError

log = logging.getLogger("aiapi.edge.mirrors")


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class KeyMirror:
    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def lookup(self, digest: str) -> KeyRecord | None:
        return self._records.get(digest)

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
