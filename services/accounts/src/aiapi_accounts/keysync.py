"""Key records in NATS KV (bucket ``aiapi_keys``, key = sha256 hex of the API key).

The edge mirrors this bucket in memory, so it must always converge to the database:

* a key's issue or revocation queues that key alone, and a change of plan or account status
  queues the account (same transaction: every record carries the plan and status); right after
  the commit the relay rewrites what was queued, and retries until it succeeds. An account with
  many keys therefore costs one KV write per key change, not one per key it owns;
* at start, :func:`full_resync` rewrites every record and deletes entries whose key is unknown
  (a bucket edited by hand, a database restored from a backup).

Writes follow the one rule of :mod:`aiapi_shared.kv_versioned` (compare-and-set on the entry's
revision, ordered by ``updated_at``): an older record never replaces a newer one, so two replicas
writing at once cannot leave an older state behind; an equal one does replace it (a resync after
a catalogue change rewrites the rate limits), and one that keeps losing raises a retryable error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from aiapi_shared.bus import KeyValue, NoKeys
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.kv_versioned import put_if_newer

from aiapi_accounts import repository
from aiapi_accounts.domain import Account, ApiKey, key_record

log = logging.getLogger("aiapi.accounts.keysync")


async def put_record(kv: KeyValue, key_hash: str, record: KeyRecord) -> None:
    """Write ``record`` unless the bucket already holds a newer one for this key (raises
    :class:`~aiapi_shared.kv_versioned.KvContended` when other writers won every round)."""
    await put_if_newer(
        kv,
        key_hash,
        record.model_dump_json().encode(),
        version=record.updated_at,
        version_of=_updated_at,
    )


def _updated_at(stored: bytes) -> datetime:
    return KeyRecord.model_validate_json(stored).updated_at


async def write_account(
    kv: KeyValue, account: Account, keys: Iterable[ApiKey], catalogue: Catalogue
) -> int:
    written = 0
    for key in keys:
        await put_record(kv, key.key_hash, key_record(account, key, catalogue))
        written += 1
    return written


def records_to_write(queued: Sequence[tuple[str, str | None]]) -> dict[str, set[str] | None]:
    """Per account, the key hashes whose records to rewrite, or None for all of its records.

    ``queued`` holds (account id, key hash or None) rows; a whole-account row covers every
    single-key row of the same account."""
    chosen: dict[str, set[str] | None] = {}
    for account_id, key_hash in queued:
        wanted = chosen.setdefault(account_id, set())
        if wanted is None:
            continue
        if key_hash is None:
            chosen[account_id] = None
        else:
            wanted.add(key_hash)
    return chosen


async def write_queued(
    kv: KeyValue,
    conn: repository.Conn,
    queued: Sequence[tuple[str, str | None]],
    catalogue: Catalogue,
) -> int:
    """Rewrite the records that queued syncs name; returns how many records were written."""
    written = 0
    for account_id, hashes in records_to_write(queued).items():
        account = await repository.get_account(conn, account_id)
        if account is None:
            continue
        if hashes is None:
            keys = await repository.list_keys(conn, account_id)
        else:
            keys = await repository.keys_by_hash(conn, account_id, sorted(hashes))
        written += await write_account(kv, account, keys, catalogue)
    return written


async def full_resync(kv: KeyValue, conn: repository.Conn, catalogue: Catalogue) -> tuple[int, int]:
    """Rewrite every key's record and delete the entries of keys the database does not know.

    Revoked keys keep a record marked ``revoked`` (the edge refuses them either way, and a
    watcher sees an explicit state rather than a gap). Returns (written, deleted).
    """
    known: set[str] = set()
    written = 0
    async for account, key in repository.all_key_hashes_with_accounts(conn):
        await put_record(kv, key.key_hash, key_record(account, key, catalogue))
        known.add(key.key_hash)
        written += 1
    try:
        present = await kv.keys()
    except NoKeys:
        present = []
    # A key issued by another replica since the cursor opened is in the bucket but not in
    # ``known``: look the candidates up again so that only truly unknown entries go.
    candidates = sorted(set(present) - known)
    still_known = await repository.existing_key_hashes(conn, candidates)
    deleted = 0
    for stale in set(candidates) - still_known:
        await kv.delete(stale)
        deleted += 1
    log.info("key records resynced", extra={"written": written, "deleted": deleted})
    return written, deleted
