"""The edge's mirror of the live catalogue: newer snapshots replace what is sold, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_edge.catalogue_mirror import CatalogueMirror
from aiapi_shared.catalogue import Catalogue, default_catalogue
from aiapi_shared.events.records_v1 import CATALOGUE_KEY, CatalogueSnapshot

SHIPPED = default_catalogue()


def _snapshot(version: int, catalogue: Catalogue = SHIPPED) -> bytes:
    doc = CatalogueSnapshot(version=version, published_at=datetime.now(UTC), catalogue=catalogue)
    return doc.model_dump_json().encode()


def test_newer_snapshots_apply_and_older_ones_do_not() -> None:
    applied: list[Catalogue] = []
    mirror = CatalogueMirror(applied.append)
    with_alias = SHIPPED.model_copy(update={"aliases": {"claude-latest": "claude-opus-4-7"}})
    mirror.on_change(CATALOGUE_KEY, _snapshot(5, with_alias))
    mirror.on_change(CATALOGUE_KEY, _snapshot(4))
    mirror.on_change(CATALOGUE_KEY, _snapshot(5))
    assert len(applied) == 1
    served = applied[0].model("claude-latest")
    assert served is not None
    assert served.id == "claude-opus-4-7"
    assert mirror.version == 5


def test_unreadable_empty_deleted_or_foreign_entries_keep_the_last_good_catalogue() -> None:
    applied: list[Catalogue] = []
    mirror = CatalogueMirror(applied.append)
    mirror.on_change(CATALOGUE_KEY, b"{not json")
    mirror.on_change(CATALOGUE_KEY, _snapshot(9, SHIPPED.model_copy(update={"models": ()})))
    mirror.on_change(CATALOGUE_KEY, None)
    mirror.on_change("other", _snapshot(10))
    assert applied == []
    assert mirror.version == -1
