"""The upstream pool at runtime: the operator's keys stored sealed, published to the edges, and
the edges' reports mirrored for the operator API.

- A key the operator adds is sealed to the edges' public key (``AIAPI_UPSTREAM_SEAL_PUBLIC_KEY``,
  :mod:`aiapi_shared.upstream_seal`) before anything else happens to it; the row keeps the sealed
  key, a fingerprint (to refuse the same key twice) and a hint.
- Every change commits, then its record is written to ``aiapi_upstream_keys`` (compare-and-set by
  ``updated_at``: an older record never replaces a newer one). The edges watch the bucket and
  apply the record as it arrives. The bucket is rewritten from the table at start and every
  ``RESYNC_S``, deleting entries the table does not know, so a write lost to a NATS outage is
  repaired within that time.
- A key of the edges' own ``AIAPI_UPSTREAM_API_KEYS`` (id ``env-…``, known from their reports)
  gets a row without a key the first time the operator changes it; removing it leaves a row
  marked ``removed`` (the edges drop it; adding the same key again brings it back).
- The edges' status reports (``aiapi_upstream_status``) are mirrored in memory by a KV watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aiapi_shared.bus import Bus, BusUnavailable, ErrorReply, InvalidReply, KeyValue, NoKeys
from aiapi_shared.edge_api import UPSTREAM_TEST_SUBJECT, UpstreamTestQuery, UpstreamTestReply
from aiapi_shared.events.records_v1 import (
    UPSTREAM_STATUS_BUCKET,
    UpstreamKeyRecord,
    UpstreamStatusReport,
)
from aiapi_shared.kv_versioned import put_if_newer
from aiapi_shared.upstream_seal import SealError, fingerprint, hint, seal
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from aiapi_accounts import repository
from aiapi_accounts.errors import Conflict, InvalidRequest, NotFound, PeerUnavailable
from aiapi_accounts.upstream_view import (
    PoolEntry,
    StoredUpstreamKey,
    live_reports,
    pool_entries,
)

log = logging.getLogger("aiapi.accounts.upstream_pool")

RESYNC_S = 30.0
TEST_TIMEOUT_S = 30.0  # an upstream answer to one token can take a while
ENV_PREFIX = "env-"


@dataclass(frozen=True, slots=True)
class KeyChange:
    """What the operator asked to change; None: keep."""

    key: str | None = None
    base_url: str | None = None
    organization: str | None = None
    weight: int | None = None
    models: tuple[str, ...] | None = None
    enabled: bool | None = None


class StatusMirror:
    """The edges' latest reports, by edge id (fed by a KV watch)."""

    def __init__(self) -> None:
        self._reports: dict[str, UpstreamStatusReport] = {}

    def on_change(self, edge_id: str, value: bytes | None) -> None:
        if value is None:
            self._reports.pop(edge_id, None)
            return
        try:
            self._reports[edge_id] = UpstreamStatusReport.model_validate_json(value)
        except ValidationError:
            self._reports.pop(edge_id, None)
            log.warning("unreadable upstream status report", extra={"edge_id": edge_id})

    def live(self) -> list[UpstreamStatusReport]:
        return live_reports(self._reports.values(), datetime.now(UTC))

    def env_key(self, key_id: str) -> tuple[str, str, str] | None:
        """(hint, organisation, base URL) of a key of the edges' setting that an edge reports."""
        for report in self.live():
            for status in report.keys:
                if status.id == key_id and status.source == "env":
                    return status.hint, status.organization, status.base_url
        return None


class UpstreamPool:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        bus: Bus,
        kv: KeyValue,
        *,
        public_key: str | None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._kv = kv
        self._public_key = public_key
        self.status = StatusMirror()

    # -- reading ------------------------------------------------------------------------------

    async def entries(self) -> list[PoolEntry]:
        async with self._pool.connection() as conn:
            stored = await repository.list_upstream_keys(conn)
        return pool_entries(stored, self.status.live())

    async def entry(self, key_id: str) -> PoolEntry:
        for entry in await self.entries():
            if entry.id == key_id:
                return entry
        raise NotFound(f"no upstream key {key_id}")

    # -- changing -----------------------------------------------------------------------------

    async def add(self, change: KeyChange) -> PoolEntry:
        if change.key is None:
            raise InvalidRequest('give the upstream key as "key"')
        digest = fingerprint(change.key)
        async with self._pool.connection() as conn, conn.transaction():
            if await repository.upstream_key_by_fingerprint(conn, digest) is not None:
                raise Conflict("this upstream key is in the pool already")
            env_id = ENV_PREFIX + digest
            env = await repository.get_upstream_key(conn, env_id, for_update=True)
            if env is not None or self.status.env_key(env_id) is not None:
                # A key of the edges' own setting: brought back if removed, never stored twice.
                if env is None or not env.removed:
                    raise Conflict("this upstream key is in the pool already")
                stored = await self._put_env(conn, env_id, env, change, True)
            else:
                stored = await repository.put_upstream_key(conn, self._new_row(change, digest))
        await self._publish(stored)
        return await self.entry(stored.id)

    def _new_row(self, change: KeyChange, digest: str) -> StoredUpstreamKey:
        assert change.key is not None
        if not self._public_key:
            raise PeerUnavailable(
                "AIAPI_UPSTREAM_SEAL_PUBLIC_KEY is not set: keys cannot be added at runtime"
            )
        try:
            sealed = seal(self._public_key, change.key)
        except SealError as exc:
            raise PeerUnavailable(str(exc)) from None
        now = datetime.now(UTC)
        return StoredUpstreamKey(
            id=f"uk_{uuid.uuid4().hex[:20]}",
            source="operator",
            sealed_key=sealed,
            fingerprint=digest,
            hint=hint(change.key),
            base_url=change.base_url,
            organization=change.organization or "",
            weight=change.weight or 1,
            models=change.models or (),
            enabled=True if change.enabled is None else change.enabled,
            removed=False,
            created_at=now,
            updated_at=now,
        )

    async def change(self, key_id: str, change: KeyChange) -> PoolEntry:
        async with self._pool.connection() as conn, conn.transaction():
            row = await repository.get_upstream_key(conn, key_id, for_update=True)
            if key_id.startswith(ENV_PREFIX):
                if change.key is not None:
                    raise InvalidRequest(
                        "a key of AIAPI_UPSTREAM_API_KEYS is changed in that setting, not here"
                    )
                stored = await self._put_env(conn, key_id, row, change, False)
            else:
                if row is None:
                    raise NotFound(f"no upstream key {key_id}")
                stored = await repository.put_upstream_key(conn, self._changed(row, change))
        await self._publish(stored)
        return await self.entry(stored.id)

    def _changed(self, row: StoredUpstreamKey, change: KeyChange) -> StoredUpstreamKey:
        updated = _apply(row, change)
        if change.key is None:
            return updated
        fresh = self._new_row(change, fingerprint(change.key))
        return replace(
            updated, sealed_key=fresh.sealed_key, fingerprint=fresh.fingerprint, hint=fresh.hint
        )

    async def _put_env(
        self,
        conn: repository.Conn,
        key_id: str,
        row: StoredUpstreamKey | None,
        change: KeyChange,
        restore: bool,
    ) -> StoredUpstreamKey:
        if row is None:
            reported = self.status.env_key(key_id)
            if reported is None:
                raise NotFound(f"no upstream key {key_id} (no running edge reports it)")
            now = datetime.now(UTC)
            row = StoredUpstreamKey(
                id=key_id,
                source="env",
                sealed_key=None,
                fingerprint=None,
                hint=reported[0],
                base_url=None,
                organization=reported[1],
                weight=1,
                models=(),
                enabled=True,
                removed=False,
                created_at=now,
                updated_at=now,
            )
        elif row.removed and not restore:
            raise NotFound(f"no upstream key {key_id}")
        updated = _apply(row, replace(change, key=None))
        if restore:
            updated = replace(updated, removed=False, enabled=True)
        return await repository.put_upstream_key(conn, updated)

    async def remove(self, key_id: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            row = await repository.get_upstream_key(conn, key_id, for_update=True)
            if key_id.startswith(ENV_PREFIX):
                if row is not None and row.removed:
                    raise NotFound(f"no upstream key {key_id}")
                kept = await self._put_env(conn, key_id, row, KeyChange(), False)
                stored: StoredUpstreamKey | None = await repository.put_upstream_key(
                    conn, replace(kept, removed=True)
                )
            else:
                if row is None or not await repository.delete_upstream_key(conn, key_id):
                    raise NotFound(f"no upstream key {key_id}")
                stored = None
        if stored is not None:
            await self._publish(stored)
            return
        try:
            await self._kv.delete(key_id)
        except Exception as exc:  # noqa: BLE001 (committed; the resync deletes the entry)
            log.warning(
                "upstream key record not deleted yet: %s",
                type(exc).__name__,
                extra={"key_id": key_id},
            )

    async def test(self, key_id: str) -> UpstreamTestReply:
        await self.entry(key_id)  # 404 for a key nobody knows
        query = UpstreamTestQuery(key_id=key_id)
        try:
            reply = await self._bus.call(
                UPSTREAM_TEST_SUBJECT, query, UpstreamTestReply, timeout_s=TEST_TIMEOUT_S
            )
        except BusUnavailable as exc:
            raise PeerUnavailable("no edge answered; is one running?") from exc
        except (InvalidReply, ErrorReply) as exc:
            raise PeerUnavailable("the edge could not run the test") from exc
        if not reply.found:
            raise PeerUnavailable(f"edge {reply.edge_id} cannot open key {key_id} (its seal key?)")
        return reply

    # -- publishing ---------------------------------------------------------------------------

    async def _publish(self, stored: StoredUpstreamKey) -> None:
        """Tell the edges now; a failure is repaired by the next resync (``RESYNC_S``)."""
        try:
            await _put(self._kv, stored.record())
        except Exception as exc:  # noqa: BLE001 (the change is committed; the resync delivers it)
            log.warning(
                "upstream key record not published yet: %s",
                type(exc).__name__,
                extra={"key_id": stored.id},
            )

    async def resync(self) -> tuple[int, int]:
        """Rewrite every record from the table; delete entries it does not know."""
        async with self._pool.connection() as conn:
            stored = await repository.list_upstream_keys(conn)
        for row in stored:
            await _put(self._kv, row.record())
        try:
            present = await self._kv.keys()
        except NoKeys:
            present = []
        stale = set(present) - {row.id for row in stored}
        for key_id in stale:
            await self._kv.delete(key_id)
        return len(stored), len(stale)

    async def run(self, stop: asyncio.Event) -> None:
        """Mirror the edges' reports and resync the bucket every ``RESYNC_S``."""
        watch = asyncio.create_task(
            self._bus.watch_kv(UPSTREAM_STATUS_BUCKET, self.status.on_change, stop=stop)
        )
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=RESYNC_S)
                if stop.is_set():
                    break
                try:
                    await self.resync()
                except Exception as exc:  # noqa: BLE001 (the next round retries)
                    log.warning("upstream key resync failed: %s", type(exc).__name__)
        finally:
            await watch


async def _put(kv: KeyValue, record: UpstreamKeyRecord) -> None:
    await put_if_newer(
        kv,
        record.id,
        record.model_dump_json().encode(),
        version=record.updated_at,
        version_of=lambda raw: UpstreamKeyRecord.model_validate_json(raw).updated_at,
    )


def _apply(row: StoredUpstreamKey, change: KeyChange) -> StoredUpstreamKey:
    return replace(
        row,
        base_url=row.base_url if change.base_url is None else (change.base_url or None),
        organization=row.organization if change.organization is None else change.organization,
        weight=row.weight if change.weight is None else change.weight,
        models=row.models if change.models is None else change.models,
        enabled=row.enabled if change.enabled is None else change.enabled,
    )
