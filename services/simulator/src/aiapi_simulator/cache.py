"""The prompt cache: which breakpoint prefixes an upstream key has written, and until when.

Pure bookkeeping in memory (no I/O); the clock is injected so tests can move time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiapi_simulator.tokens import PromptTokens

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """The cache figures of one request, in tokens."""

    read: int = 0
    creation_5m: int = 0
    creation_1h: int = 0

    @property
    def creation(self) -> int:
        return self.creation_5m + self.creation_1h


NO_CACHE = CacheUsage()


class PromptCache:
    """Cache entries keyed by (upstream api key, prefix digest), each with an expiry time.

    For a request with breakpoints, the longest breakpoint prefix still cached is read; the tokens
    between it and the last breakpoint are written, each span at the TTL of the breakpoint that
    ends it. Every breakpoint of the request is then (re)stored, which also refreshes a hit.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._expiry: dict[tuple[str, bytes], float] = {}

    def apply(self, api_key: str, prompt: PromptTokens) -> CacheUsage:
        breakpoints = prompt.breakpoints
        if not breakpoints:
            return NO_CACHE
        now = self._clock()
        hit = -1
        for index in range(len(breakpoints) - 1, -1, -1):
            expiry = self._expiry.get((api_key, breakpoints[index].digest))
            if expiry is not None and expiry > now:
                hit = index
                break
        read = breakpoints[hit].prefix_tokens if hit >= 0 else 0
        written = {"5m": 0, "1h": 0}
        previous = read
        for breakpoint_ in breakpoints[hit + 1 :]:
            written[breakpoint_.ttl] += breakpoint_.prefix_tokens - previous
            previous = breakpoint_.prefix_tokens
        for breakpoint_ in breakpoints:
            key = (api_key, breakpoint_.digest)
            until = now + TTL_SECONDS[breakpoint_.ttl]
            self._expiry[key] = max(until, self._expiry.get(key, 0.0))
        self._evict(now)
        return CacheUsage(read=read, creation_5m=written["5m"], creation_1h=written["1h"])

    def clear(self) -> None:
        self._expiry.clear()

    def __len__(self) -> int:
        return len(self._expiry)

    def _evict(self, now: float) -> None:
        if len(self._expiry) <= self._max_entries:
            return
        self._expiry = {k: v for k, v in self._expiry.items() if v > now}
        while len(self._expiry) > self._max_entries:
            del self._expiry[next(iter(self._expiry))]
