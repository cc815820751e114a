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

Keys take turns in a weighted order (smooth weighted round-robin, nginx's: a key of weight 3
has three turns where one of weight 1 has one, spread out), a request taking the next turn whose
key is able to serve it; with equal weights that is plain round-robin. A request that names its
conversation takes the first able key in that conversation's weighted ranking instead
(:mod:`.affinity`), so it keeps its organisation's prompt cache while that key is healthy. A key
with a model list serves only those models. (The recent errors carry the wall-clock time, for
the operator; every rule runs on the injected clock.)

The pool changes while it serves (:meth:`UpstreamPool.replace`, fed by the operator's records,
:mod:`.upstream_keys`): each key has a *slot*, a number that stays its own for as long as it is in
the pool and is never reused, so an attempt in flight reports its verdict to the key it used or,
when that key left meanwhile, to nobody. A key that stays keeps its health and counters.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiapi_edge.affinity import ranking
from aiapi_edge.settings import UpstreamKey

Outcome = Literal[
    "ok", "rate_limited", "overloaded", "server_error", "connection_error", "key_rejected"
]
KeyHealth = Literal["healthy", "resting", "open", "half_open", "disabled"]


RECENT_ERRORS = 5
_METERS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)


@dataclass(slots=True)
class KeyCounters:
    """What one key did on this edge since it joined the pool (the operator API's view)."""

    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    list_cost_nano: int = 0
    recent_errors: deque[tuple[datetime, str, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_ERRORS)
    )


@dataclass(slots=True)
class _KeyState:
    key: UpstreamKey
    rest_until: float = 0.0
    failures: int = 0
    open_until: float = 0.0
    open_s: float = 0.0
    probing: bool = False
    disabled_until: float = 0.0
    counters: KeyCounters = field(default_factory=KeyCounters)


@dataclass(frozen=True, slots=True)
class KeyView:
    """One key of the pool, its health and counters, as the status report shows it."""

    key: UpstreamKey
    health: KeyHealth
    counters: KeyCounters


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
        self._states: dict[int, _KeyState] = {}
        self._slots = 0  # the next slot number; slots are never reused
        self._turns: list[int] = []  # the weighted order of the slots, one entry per turn
        self._next = 0
        self._affinity = affinity  # False: round-robin whatever the conversation
        self._clock = clock
        self._threshold = failure_threshold
        self._open_s = open_s
        self._max_open_s = max_open_s
        self._recheck_s = disabled_recheck_s
        self.replace(keys)

    def __len__(self) -> int:
        return len(self._states)

    def key(self, slot: int) -> UpstreamKey:
        return self._states[slot].key

    def serving(self) -> list[UpstreamKey]:
        return [state.key for state in self._states.values()]

    def replace(self, keys: Sequence[UpstreamKey]) -> None:
        """Serve ``keys`` from now on. A key already in the pool (same ``key_id``) keeps its slot,
        health and counters and takes the new settings (weight, models, base URL); a key not in
        ``keys`` leaves, and attempts in flight on it end without a verdict."""
        by_id = {state.key.key_id: slot for slot, state in self._states.items()}
        states: dict[int, _KeyState] = {}
        for key in keys:
            slot = by_id.get(key.key_id)
            if slot is None or slot in states:
                slot, self._slots = self._slots, self._slots + 1
                states[slot] = _KeyState(key)
            else:
                state = self._states[slot]
                state.key = key
                states[slot] = state
        self._states = states
        self._turns = _weighted_turns({slot: state.key.weight for slot, state in states.items()})
        self._next = 0

    def find(self, fingerprint: str) -> int | None:
        """The slot of the key with this :attr:`UpstreamKey.fingerprint`, if it is in the pool."""
        for slot, state in self._states.items():
            if state.key.fingerprint == fingerprint:
                return slot
        return None

    def fingerprints(self) -> list[str]:
        return [state.key.fingerprint for state in self._states.values()]

    def acquire(
        self,
        tried: set[int],
        *,
        probe: bool = True,
        conversation: str | None = None,
        model: str | None = None,
    ) -> int | None:
        """The slot of the next key able to serve (not in ``tried``, serving ``model``), or None
        when none is. With ``probe=False`` (a caller that reports no verdict) only healthy keys
        are chosen. With a ``conversation``, the first able key in its ranking
        (:func:`.affinity.ranking`)."""
        now = self._clock()

        def able(slot: int) -> bool:
            state = self._states[slot]
            return slot not in tried and state.key.serves(model) and self._able(state, now, probe)

        chosen: int | None = None
        if conversation is not None and self._affinity:
            candidates = [slot for slot in self._states if able(slot)]
            if candidates:
                order = ranking(conversation, [self._states[slot].key for slot in candidates])
                chosen = candidates[order[0]]
        else:
            count = len(self._turns)
            for step in range(count):
                turn = (self._next + step) % count
                if able(self._turns[turn]):
                    chosen, self._next = self._turns[turn], (turn + 1) % count
                    break
        if chosen is None:
            return None
        state = self._states[chosen]
        if state.disabled_until or state.open_until:
            state.probing = True  # the rest is over: this request probes whether the key is back
        return chosen

    @staticmethod
    def _able(state: _KeyState, now: float, probe: bool) -> bool:
        if state.disabled_until > now or state.rest_until > now or state.open_until > now:
            return False
        if state.disabled_until or state.open_until:
            # The rest is over: one probe at a time decides whether the key is back.
            return probe and not state.probing
        return True

    def attempted(self, slot: int) -> None:
        state = self._states.get(slot)
        if state is not None:
            state.counters.requests += 1

    def served(self, slot: int, meters: Mapping[str, int | str], list_cost_nano: int) -> None:
        """Count what an answered request used (its usage as metered) against its key."""
        state = self._states.get(slot)
        if state is None:
            return  # the key left the pool meanwhile
        tokens = state.counters.tokens
        for meter in _METERS:
            value = meters.get(meter, 0)
            if isinstance(value, int) and value > 0:
                tokens[meter] = tokens.get(meter, 0) + value
        state.counters.list_cost_nano += list_cost_nano

    def record(
        self,
        slot: int,
        outcome: Outcome,
        retry_after_s: float | None = None,
        detail: str = "",
    ) -> None:
        state = self._states.get(slot)
        if state is None:
            return  # the key left the pool while the attempt ran: no one to tell
        now = self._clock()
        state.probing = False
        if outcome != "ok":
            errors = state.counters.errors
            errors[outcome] = errors.get(outcome, 0) + 1
            state.counters.recent_errors.append((datetime.now(UTC), outcome, detail))
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

    def release(self, slot: int) -> None:
        """An attempt that ended without a verdict on the key (the client left): no probe held."""
        state = self._states.get(slot)
        if state is not None:
            state.probing = False

    def rest_remaining(self) -> float | None:
        """Seconds until the first resting key (429) may serve again; None if none rests."""
        now = self._clock()
        waits = [s.rest_until - now for s in self._states.values() if s.rest_until > now]
        return min(waits) if waits else None

    def health(self) -> list[tuple[str, KeyHealth]]:
        now = self._clock()
        return [(s.key.label, self._health(s, now)) for s in self._states.values()]

    def views(self) -> list[KeyView]:
        now = self._clock()
        return [KeyView(s.key, self._health(s, now), s.counters) for s in self._states.values()]

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


def _weighted_turns(weights: dict[int, int]) -> list[int]:
    """The slots in smooth weighted round-robin order over one cycle (as many turns as the
    weights add up to): each round every slot gains its weight, the richest takes the turn and
    pays the total back, so a heavy key's turns are spread out, not bunched. Weights are divided
    by their greatest common divisor first (2 and 4 make a cycle of 3 turns, not 6)."""
    divisor = math.gcd(*weights.values()) if weights else 1
    weights = {slot: weight // divisor for slot, weight in weights.items()}
    total = sum(weights.values())
    credit = dict.fromkeys(weights, 0)
    turns: list[int] = []
    for _ in range(total):
        for slot, weight in weights.items():
            credit[slot] += weight
        richest = max(credit, key=lambda slot: credit[slot])  # the first of equals: slot order
        credit[richest] -= total
        turns.append(richest)
    return turns
