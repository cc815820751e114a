"""The health of the upstream keys and the choice of one for each attempt (pure, clock injected).

Health is kept per key, by error class (which answer is which class: :mod:`.verdict`):

- ``rate_limited`` (429): the key rests until its ``retry-after`` (1 s when absent); other keys
  serve meanwhile.
- ``overloaded`` (529): not about the key (the API is busy for everyone): nothing changes; the
  request waits and retries (:mod:`.backoff`).
- ``server_error`` (5xx) and ``connection_error``: counted; after ``failure_threshold`` in a row
  the key's circuit opens for ``open_s`` (doubling on each failed probe, up to ``max_open_s``).
  When that time is up one request probes it (half-open); success closes the circuit.
- ``key_rejected`` (401, 403, 402 billing, a spend cap, a disabled organisation): the key is
  taken out and an alert raised; it is probed again after ``disabled_recheck_s`` in case the
  operator fixed it.

Keys are used round-robin among the healthy ones; a request that names its conversation takes
the first able key in that conversation's ranking instead (:mod:`.affinity`), so it keeps its
organisation's prompt cache while that key is healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiapi_edge.affinity import ranking
from aiapi_edge.settings import UpstreamKey

Outcome = Literal[
    "ok", "rate_limited", "overloaded", "server_error", "connection_error", "key_rejected"
]
KeyHealth = Literal["healthy", "resting", "open", "half_open", "disabled"]


@dataclass(slots=True)
class _KeyState:
    key: UpstreamKey
    rest_until: float = 0.0
    failures: int = 0
    open_until: float = 0.0
    open_s: float = 0.0
    probing: bool = False
    disabled_until: float = 0.0


class UpstreamPool:
    def __init__(
        self,
        keys: Sequence[UpstreamKey],
        *,
        clock: Callable[[], float] = time.monotonic,
        failure_threshold: int = 3,
        open_s: float = 5.0,
        max_open_s: float = 60.0,
        disabled_recheck_s: float = 300.0,
        affinity: bool = True,
    ) -> None:
        self._states = [_KeyState(key) for key in keys]
        self._keys = tuple(keys)
        self._affinity = affinity  # False: round-robin whatever the conversation
        self._clock = clock
        self._threshold = failure_threshold
        self._open_s = open_s
        self._max_open_s = max_open_s
        self._recheck_s = disabled_recheck_s
        self._next = 0

    def __len__(self) -> int:
        return len(self._states)

    def key(self, index: int) -> UpstreamKey:
        return self._states[index].key

    def find(self, fingerprint: str) -> int | None:
        """The index of the key with this :attr:`UpstreamKey.fingerprint`, if it is in the pool."""
        for index, state in enumerate(self._states):
            if state.key.fingerprint == fingerprint:
                return index
        return None

    def fingerprints(self) -> list[str]:
        return [state.key.fingerprint for state in self._states]

    def acquire(
        self, tried: set[int], *, probe: bool = True, conversation: str | None = None
    ) -> int | None:
        """The next key able to serve (not in ``tried``), or None when none is. With
        ``probe=False`` (a caller that reports no verdict) only healthy keys are chosen. With a
        ``conversation``, the first able key in its ranking (:func:`.affinity.ranking`)."""
        now = self._clock()
        if conversation is not None and self._affinity:
            for index in ranking(conversation, self._keys):
                if index not in tried and self._usable(self._states[index], now, probe):
                    return index
            return None
        count = len(self._states)
        for step in range(count):
            index = (self._next + step) % count
            if index in tried:
                continue
            if self._usable(self._states[index], now, probe):
                self._next = (index + 1) % count
                return index
        return None

    def _usable(self, state: _KeyState, now: float, probe: bool) -> bool:
        if state.disabled_until > now or state.rest_until > now or state.open_until > now:
            return False
        if state.disabled_until or state.open_until:
            # The rest is over: one probe at a time decides whether the key is back.
            if state.probing or not probe:
                return False
            state.probing = True
        return True

    def record(self, index: int, outcome: Outcome, retry_after_s: float | None = None) -> None:
        state = self._states[index]
        now = self._clock()
        state.probing = False
        if outcome == "ok":
            state.failures = 0
            state.open_until = state.open_s = state.disabled_until = 0.0
        elif outcome == "rate_limited":
            state.rest_until = now + (retry_after_s if retry_after_s else 1.0)
        elif outcome == "overloaded":
            pass  # the API is busy for every key: no verdict on this one
        elif outcome == "key_rejected":
            state.disabled_until = now + self._recheck_s
        else:
            state.failures += 1
            if state.open_until or state.failures >= self._threshold:
                state.open_s = min(
                    self._max_open_s, state.open_s * 2 if state.open_s else self._open_s
                )
                state.open_until = now + state.open_s

    def release(self, index: int) -> None:
        """An attempt that ended without a verdict on the key (the client left): no probe held."""
        self._states[index].probing = False

    def rest_remaining(self) -> float | None:
        """Seconds until the first resting key (429) may serve again; None if none rests."""
        now = self._clock()
        waits = [s.rest_until - now for s in self._states if s.rest_until > now]
        return min(waits) if waits else None

    def health(self) -> list[tuple[str, KeyHealth]]:
        now = self._clock()
        return [(s.key.label, self._health(s, now)) for s in self._states]

    @staticmethod
    def _health(state: _KeyState, now: float) -> KeyHealth:
        if state.disabled_until > now:
            return "disabled"
        if state.open_until > now:
            return "open"
        if state.open_until or state.disabled_until:
            return "half_open"
        if state.rest_until > now:
            return "resting"
        return "healthy"
