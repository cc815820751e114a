"""The operator's view of the upstream pool (pure): the stored keys and the edges' reports,
added up into one entry per key.

A key is listed when accounts stores it (an operator's key, or a change to one of the edges' own
keys) or when an edge reports one of its own keys (``AIAPI_UPSTREAM_API_KEYS``) nobody changed. Its
health is each reporting edge's; requests, errors, tokens and cost at list price are summed over
the edges (each counts from its own start); the recent errors are the newest few of all edges.
No entry ever holds a key: only its hint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiapi_shared.events.records_v1 import (
    UPSTREAM_STATUS_TTL_S,
    UpstreamKeyRecord,
    UpstreamKeySource,
    UpstreamKeyStatus,
    UpstreamStatusReport,
)

RECENT_ERRORS = 10


@dataclass(frozen=True, slots=True)
class StoredUpstreamKey:
    """A row of ``upstream_keys``: never the key in clear."""

    id: str
    source: UpstreamKeySource
    sealed_key: str | None
    fingerprint: str | None
    hint: str
    base_url: str | None
    organization: str
    weight: int
    models: tuple[str, ...]
    enabled: bool
    removed: bool
    created_at: datetime
    updated_at: datetime

    def record(self) -> UpstreamKeyRecord:
        """What the edges are told (``aiapi_upstream_keys``)."""
        return UpstreamKeyRecord(
            id=self.id,
            source=self.source,
            sealed_key=self.sealed_key,
            hint=self.hint,
            base_url=self.base_url,
            organization=self.organization,
            weight=self.weight,
            enabled=self.enabled,
            removed=self.removed,
            models=self.models,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class EdgeHealth:
    edge_id: str
    health: str


@dataclass(frozen=True, slots=True)
class RecentError:
    edge_id: str
    at: datetime
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class PoolEntry:
    id: str
    source: UpstreamKeySource
    hint: str
    base_url: str | None
    organization: str
    weight: int
    models: tuple[str, ...]
    enabled: bool
    created_at: datetime | None
    updated_at: datetime | None
    health: str  # the worst of the edges' ("unknown" while no edge reports the key)
    edges: tuple[EdgeHealth, ...]
    requests: int
    errors: dict[str, int]
    tokens: dict[str, int]
    list_cost_nano: int
    recent_errors: tuple[RecentError, ...]


# From the worst to the best: an entry shows the worst health any edge reports.
_SEVERITY = ("disabled", "open", "half_open", "resting", "off", "healthy")


def live_reports(
    reports: Iterable[UpstreamStatusReport], now: datetime
) -> list[UpstreamStatusReport]:
    """The reports of edges alive now (rewritten within the bucket's time to live)."""
    horizon = now - timedelta(seconds=UPSTREAM_STATUS_TTL_S)
    return sorted((r for r in reports if r.reported_at >= horizon), key=lambda r: r.edge_id)


def pool_entries(
    stored: Sequence[StoredUpstreamKey], reports: Sequence[UpstreamStatusReport]
) -> list[PoolEntry]:
    """One entry per key, stored keys first (in their order), then keys only edges report."""
    seen: dict[str, list[tuple[str, UpstreamKeyStatus]]] = {}
    for report in reports:
        for status in report.keys:
            seen.setdefault(status.id, []).append((report.edge_id, status))
    entries = [_entry(row, seen.get(row.id, [])) for row in stored if not row.removed]
    known = {row.id for row in stored}
    for key_id, statuses in seen.items():
        # An operator's key the table does not hold was removed: an edge may report it until
        # its next report. Only the edges' own keys are listed from the reports alone.
        if key_id not in known and statuses[0][1].source == "env":
            entries.append(_entry(None, statuses))
    return entries


def _entry(
    row: StoredUpstreamKey | None, statuses: list[tuple[str, UpstreamKeyStatus]]
) -> PoolEntry:
    first = statuses[0][1] if statuses else None
    errors: dict[str, int] = {}
    tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_creation": 0}
    recent: list[RecentError] = []
    for edge_id, status in statuses:
        for outcome, count in status.errors.items():
            errors[outcome] = errors.get(outcome, 0) + count
        tokens["input"] += status.input_tokens
        tokens["output"] += status.output_tokens
        tokens["cache_read"] += status.cache_read_input_tokens
        tokens["cache_creation"] += status.cache_creation_input_tokens
        recent += [RecentError(edge_id, e.at, e.outcome, e.detail) for e in status.recent_errors]
    recent.sort(key=lambda e: e.at, reverse=True)
    healths = [status.health for _, status in statuses]
    if row is not None:
        ident, source, hint = row.id, row.source, row.hint
        base_url = row.base_url or (first.base_url if first is not None else None)
        organization, weight, models = row.organization, row.weight, row.models
        enabled, created, updated = row.enabled, row.created_at, row.updated_at
    else:
        assert first is not None  # a key no one stores is listed because an edge reports it
        ident, source, hint = first.id, first.source, first.hint
        base_url, organization, weight = first.base_url, first.organization, first.weight
        models, enabled, created, updated = first.models, True, None, None
    return PoolEntry(
        id=ident,
        source=source,
        hint=hint,
        base_url=base_url,
        organization=organization,
        weight=weight,
        models=models,
        enabled=enabled,
        created_at=created,
        updated_at=updated,
        health=min(healths, key=_rank) if healths else "unknown",
        edges=tuple(EdgeHealth(edge_id, status.health) for edge_id, status in statuses),
        requests=sum(status.requests for _, status in statuses),
        errors=errors,
        tokens=tokens,
        list_cost_nano=sum(status.list_cost for _, status in statuses),
        recent_errors=tuple(recent[:RECENT_ERRORS]),
    )


def _rank(health: str) -> int:
    return _SEVERITY.index(health) if health in _SEVERITY else 0
