"""The live catalogue, mirrored from KV ``aiapi_catalogue`` (written by billing).

Until the first snapshot arrives the edge sells the shipped catalogue; afterwards each newer
snapshot replaces what is sold, atomically for the request path: ``apply`` receives the whole new
catalogue, and callers read it through one attribute. An older or unreadable snapshot is ignored
(keeping the last good one beats selling nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.records_v1 import newer_snapshot

log = logging.getLogger("aiapi.edge.catalogue")


class CatalogueMirror:
    def __init__(self, apply: Callable[[Catalogue], None]) -> None:
        self._apply = apply
        self.version = -1

    def on_change(self, key: str, value: bytes | None) -> None:
        snapshot = newer_snapshot(key, value, self.version)
        if snapshot is None:
            return
        if not snapshot.catalogue.models:
            log.error("empty catalogue snapshot ignored", extra={"version": snapshot.version})
            return
        self.version = snapshot.version
        self._apply(snapshot.catalogue)
        log.info(
            "catalogue updated",
            extra={"version": snapshot.version, "models": len(snapshot.catalogue.models)},
        )
