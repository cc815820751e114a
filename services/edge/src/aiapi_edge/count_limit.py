"""The per-key rate limit of ``count_tokens`` on one edge replica (pure, clock injected).

``count_tokens`` costs the customer nothing and is not admitted by billing, so it needs a limit
of its own to keep one key from spending the upstream pool's capacity: ``per_minute`` requests
per customer key, as a token bucket (a burst of up to ``per_minute``, refilled evenly over the
minute). The bucket lives in this process: a global count would need a shared counter update
per request, for a route whose whole point is to be cheap; with N replicas a key may reach N
times the limit, which still bounds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_PRUNE_ABOVE = 10_000  # buckets kept before the full ones are forgotten


class PerKeyRate:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float | None:
        """Count one request: None when allowed, else the seconds until one would be."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        if len(self._buckets) > _PRUNE_ABOVE and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return None

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again: a new bucket starts full anyway."""
        full_after = self._capacity / self._rate
        self._buckets = {
            key: (tokens, at)
            for key, (tokens, at) in self._buckets.items()
            if now - at < full_after
        }
