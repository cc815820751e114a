"""How many edge workers to run, and which spool directories each one owns (pure: no I/O).

An edge runs ``N`` worker processes (docs/edge.md, "Workers"). Worker ``i`` owns the spool
directory ``worker-i`` under the edge's spool directory: its usage events, its mirror snapshot.
Spools of workers that no longer exist (``N`` shrank, or the single-process layout of earlier
versions kept its files at the top of the directory) are *orphans*; each is adopted by exactly
one of today's workers, which publishes what it holds and then removes it, so nothing left on the
volume is forgotten whatever ``N`` becomes.
"""

from __future__ import annotations

import math
import re

WORKER_PREFIX = "worker-"
_WORKER_DIR = re.compile(r"worker-(0|[1-9][0-9]{0,5})")
# The top-level spool of the single-process layout, adopted like an orphan.
LEGACY = -1


def worker_dir_name(index: int) -> str:
    return f"{WORKER_PREFIX}{index}"


def worker_index(name: str) -> int | None:
    """The worker index a directory name claims (``worker-3`` → 3), or None for any other name."""
    match = _WORKER_DIR.fullmatch(name)
    return int(match.group(1)) if match else None


def adopted_by(orphan: int, count: int) -> int:
    """Which of ``count`` workers adopts the spool of former worker ``orphan`` (or LEGACY)."""
    return 0 if orphan == LEGACY else orphan % count


def orphans_of(index: int, count: int, present: set[int]) -> list[int]:
    """The orphan spools (indices in ``present`` that are not a live worker's) worker ``index``
    of ``count`` adopts; LEGACY first, then in order."""
    return sorted(
        o for o in present if (o == LEGACY or o >= count) and adopted_by(o, count) == index
    )


def cpu_quota(cpu_max: str) -> float | None:
    """The CPUs a cgroup v2 ``cpu.max`` line allows (``"150000 100000"`` → 1.5), or None when it
    sets no limit (``"max 100000"``) or cannot be read."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def worker_count(configured: int, affinity: int, quota: float | None) -> int:
    """``configured`` when set (> 0); else the CPUs this process may run on, no more than its
    cgroup's CPU limit rounded up (a container limited to 1.5 CPUs runs 2 workers), at least 1."""
    if configured > 0:
        return configured
    available = max(1, affinity)
    if quota is not None:
        available = min(available, max(1, math.ceil(quota)))
    return available


def restart_delay(previous_s: float, ran_s: float, *, first_s: float, max_s: float) -> float:
    """How long to wait before restarting a worker that died after running ``ran_s``: at once
    (``first_s``) after a long run, doubling while it keeps dying young, at most ``max_s``."""
    if ran_s >= max_s or previous_s <= 0:
        return first_s
    return min(max_s, previous_s * 2)
