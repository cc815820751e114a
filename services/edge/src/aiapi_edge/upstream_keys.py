"""The pool's keys as the operator set them: ``AIAPI_UPSTREAM_API_KEYS`` and the records of the
``aiapi_upstream_keys`` bucket, combined (no I/O: fed by a KV watch, it hands the pool its keys).

- An operator's record (``source`` "operator") carries its key sealed to the edges' public key
  (:mod:`aiapi_shared.upstream_seal`); it is opened here with the private key, once per record
  version. A record this edge cannot open (no private key, another key pair) is left out and
  logged, without any of its material.
- A record about a key of the edge's own setting (``source`` "env", id ``env-<fingerprint>``)
  changes its weight, models, organisation or base URL, disables it or removes it.
- A disabled or removed key is not in the pool; it stays known here so that the operator may still
  test it (:meth:`UpstreamKeys.find`).

Each change replaces the pool's keys at once (:meth:`.pool.UpstreamPool.replace`): the next
request sees the new pool, and requests in flight finish on the key they hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from aiapi_shared.events.records_v1 import UpstreamKeyRecord
from aiapi_shared.upstream_seal import SealError, unseal
from pydantic import ValidationError

from aiapi_edge.settings import UpstreamKey

log = logging.getLogger("aiapi.edge.upstream_keys")


class UpstreamKeys:
    def __init__(
        self,
        env_keys: Sequence[UpstreamKey],
        *,
        default_base_url: str,
        private_key: str | None,
        apply: Callable[[list[UpstreamKey]], None],
    ) -> None:
        self._env = {key.key_id: key for key in env_keys}
        self._default_base_url = default_base_url.rstrip("/")
        self._private_key = private_key
        self._apply = apply
        self._records: dict[str, UpstreamKeyRecord] = {}
        self._opened: dict[str, tuple[str, str]] = {}  # id -> (sealed key, key in clear)

    def env_keys(self) -> list[UpstreamKey]:
        """The setting's keys as the operator configured them (removed ones left out)."""
        keys = []
        for key_id in self._env:
            record = self._records.get(key_id)
            key = self.find(key_id)
            if key is not None and (record is None or not record.removed):
                keys.append(key)
        return keys

    def on_change(self, key_id: str, value: bytes | None) -> None:
        if value is None:
            self._records.pop(key_id, None)
            self._opened.pop(key_id, None)
        else:
            try:
                self._records[key_id] = UpstreamKeyRecord.model_validate_json(value)
            except ValidationError:
                # An unreadable record must not leave an older one (maybe enabled) in force.
                self._records.pop(key_id, None)
                log.error("unreadable upstream key record dropped", extra={"key_id": key_id})
        self._apply(self.serving())

    def serving(self) -> list[UpstreamKey]:
        """The keys that take traffic now, the setting's first, in its order."""
        keys = []
        for key_id in [*self._env, *sorted(set(self._records) - set(self._env))]:
            key = self.find(key_id)
            record = self._records.get(key_id)
            if key is not None and (record is None or (record.enabled and not record.removed)):
                keys.append(key)
        return keys

    def find(self, key_id: str) -> UpstreamKey | None:
        """The key ``key_id`` as the operator configured it, in the pool or not."""
        record = self._records.get(key_id)
        env = self._env.get(key_id)
        if record is None:
            return env
        if env is not None:
            return replace(
                env,
                organisation=record.organization or env.organisation,
                base_url=(record.base_url or env.base_url).rstrip("/"),
                weight=record.weight,
                models=record.models,
            )
        secret = self._open(record)
        if secret is None:
            return None
        return UpstreamKey(
            base_url=(record.base_url or self._default_base_url).rstrip("/"),
            api_key=secret,
            organisation=record.organization,
            weight=record.weight,
            models=record.models,
            key_id=record.id,
            source="operator",
        )

    def _open(self, record: UpstreamKeyRecord) -> str | None:
        if record.sealed_key is None:
            return None  # an override of an env key this edge does not have
        cached = self._opened.get(record.id)
        if cached is not None and cached[0] == record.sealed_key:
            return cached[1]
        if self._private_key is None:
            log.error(
                "an upstream key was added but this edge has no AIAPI_UPSTREAM_SEAL_PRIVATE_KEY",
                extra={"key_id": record.id},
            )
            return None
        try:
            secret = unseal(self._private_key, record.sealed_key)
        except SealError:
            log.error(
                "an upstream key does not open with this edge's seal private key",
                extra={"key_id": record.id},
            )
            return None
        self._opened[record.id] = (record.sealed_key, secret)
        return secret
