"""One admission lease as the edge sees it, and how big a lease to ask for (pure: no I/O).

Billing grants a lease (``aiapi_shared.admission``): money already held in its ledger, a slice of
the plan's requests/min and tokens/min, and a window to admit in. The edge admits a request
against it when the request's worst case, one request and its token estimate all fit; each
admitted request reserves its worst case, exactly as a per-request hold would. The lease keeps
the sums billing needs when it is closed. Time is the edge's monotonic clock, and the window is
counted from before the grant was asked for, so the edge never admits past billing's window.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stop admitting this long before the window billing gave ends: a request admitted at the last
# moment is still within it by the time billing hears of anything.
WINDOW_MARGIN_S = 0.5
# A lease its account has not used for this long is closed (its money and slices go back), so a
# long window costs an account that stopped sending no more than this. 30 s (was 10): an account
# sending a request every 10 to 30 s paid a grant and a close, two billing transactions, per
# request; the price is that an account that stopped has its lease's money (at most half its
# available balance) and slices held up to 30 s after its last request (docs/performance.md,
# "Leases, spool checkpoints and nats-server at low rates").
IDLE_CLOSE_S = 30.0
# Ask for more once less than this share of any slice is left, so that it is in hand before the
# lease runs out.
RENEW_BELOW = 0.5
# ... or once less than this share of its window is left: a renewal (one round trip) takes a few
# milliseconds, so a lease that demand does not use up is renewed once per most of its window.
RENEW_WINDOW_BELOW = 0.2


# The cost of a request no lease may admit (its model has no price here): billing decides.
UNCOVERABLE = 2**62


Terms = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request needs from a lease: its worst-case cost and the tokens admission counts,
    and the terms (requests/min, tokens/min, discount) its account has now: a lease granted under
    other terms is not used (an operator changed the plan or the account's limits)."""

    cost: int
    tokens: int
    terms: Terms = (0, 0, 0)


@dataclass(slots=True)
class Lease:
    lease_id: str
    account_id: str
    plan: str
    granted: int  # nano-USD billing holds for it (top-ups asked before closing included)
    requests: int
    tokens: int
    opened_at: float  # monotonic, when the grant was asked for
    deadline: float  # monotonic: admit nothing after this
    admitted: int = 0
    reserved: int = 0  # the admitted requests' shares, top-ups included
    reserved_tokens: int = 0
    closing: bool = False
    terms: Terms = (0, 0, 0)  # the account's terms when it was asked for
    last_used: float = 0.0  # monotonic: when it last admitted a request (or was granted)
    # What was left of each slice after the last grant or renewal: "running low" and the size of
    # the next ask are measured against it, not against the totals, which renewals only grow.
    fresh: tuple[int, int, int] = (0, 0, 0)  # money, requests, tokens

    def __post_init__(self) -> None:
        if self.fresh == (0, 0, 0):
            self.fresh = self.unused()
        self.last_used = max(self.last_used, self.opened_at)

    def idle(self, now: float) -> bool:
        """Its account sent nothing for ``IDLE_CLOSE_S``: hand it back, whatever its window."""
        return now - self.last_used >= IDLE_CLOSE_S

    def unused(self) -> tuple[int, int, int]:
        """What is left of the money, requests and tokens."""
        return (
            self.granted - self.reserved,
            self.requests - self.admitted,
            self.tokens - self.reserved_tokens,
        )

    @classmethod
    def granted_at(
        cls,
        *,
        lease_id: str,
        account_id: str,
        plan: str,
        amount: int,
        requests: int,
        tokens: int,
        asked_at: float,
        admit_for_s: float,
        terms: Terms = (0, 0, 0),
    ) -> Lease:
        deadline = asked_at + max(0.0, admit_for_s - WINDOW_MARGIN_S)
        return cls(
            lease_id, account_id, plan, amount, requests, tokens, asked_at, deadline, terms=terms
        )

    def usable(self, plan: str, now: float, terms: Terms = (0, 0, 0)) -> bool:
        return (
            not self.closing and self.plan == plan and self.terms == terms and now < self.deadline
        )

    def fits(self, demand: Demand) -> bool:
        return (
            self.admitted < self.requests
            and self.reserved + demand.cost <= self.granted
            and self.reserved_tokens + demand.tokens <= self.tokens
        )

    def admit(self, demand: Demand) -> None:
        """Take ``demand`` from the lease (the caller checked :meth:`fits`)."""
        self.admitted += 1
        self.reserved += demand.cost
        self.reserved_tokens += demand.tokens

    def topped_up(self, amount: int) -> None:
        """Billing added ``amount`` to this lease for one of its requests, which reserves it.
        (Only before the close went: after it, billing counts top-ups itself.)"""
        self.granted += amount
        self.reserved += amount

    def renewed(
        self, *, amount: int, requests: int, tokens: int, asked_at: float, admit_for_s: float
    ) -> None:
        """Billing renewed it in place (``amount``, ``requests``, ``tokens`` added) and gave it a
        new window, counted from before the renewal was asked for."""
        self.granted += amount
        self.requests += requests
        self.tokens += tokens
        self.opened_at = asked_at
        self.deadline = max(self.deadline, asked_at + max(0.0, admit_for_s - WINDOW_MARGIN_S))
        self.fresh = self.unused()

    def running_low(self, now: float) -> bool:
        """Less than ``RENEW_BELOW`` of the money, requests or tokens :meth:`unused` at the last
        grant is left, or less than ``RENEW_WINDOW_BELOW`` of the window (asked on every
        admission under the lease: written out, without a generator)."""
        money, requests, tokens = self.fresh
        return (
            self.granted - self.reserved < money * RENEW_BELOW
            or self.requests - self.admitted < requests * RENEW_BELOW
            or self.tokens - self.reserved_tokens < tokens * RENEW_BELOW
            or self.deadline - now < (self.deadline - self.opened_at) * RENEW_WINDOW_BELOW
        )


@dataclass(frozen=True, slots=True)
class Ask:
    amount: int
    min_amount: int
    requests: int
    tokens: int
    min_tokens: int


# The requests (and tokens) of an account's first lease: the plan's requests/min is shared
# between replicas by slicing it, and a slice one replica does not use is refused to the others
# until it returns (a 429 below the limit), so the first slice is a burst's start, not the most
# billing would grant; it doubles with each renewal demand asks for. Money has no such cost: it
# is all the account's own, held where it is admitted.
FIRST_REQUESTS = 16
# A lease that was not used up in its window is followed by one of twice what it admitted, and
# never less than a few requests like the one that asks.
FEW_REQUESTS = 4


def _used(lease: Lease) -> tuple[int, int, int]:
    """What was used of each slice since the lease's last grant or renewal."""
    (money, requests, tokens), (money_left, requests_left, tokens_left) = (
        lease.fresh,
        lease.unused(),
    )
    return (
        max(0, money - money_left),
        max(0, requests - requests_left),
        max(0, tokens - tokens_left),
    )


def _ran_low_by_use(lease: Lease) -> bool:
    """At least half of one of its slices was used: demand, not the clock, ended it."""
    return any(2 * used >= fresh for used, fresh in zip(_used(lease), lease.fresh, strict=True))


def next_ask(
    demand: Demand,
    previous: Lease | None,
    *,
    max_amount: int,
    max_requests: int,
    waiting: int = 0,
) -> Ask:
    """Size the next lease of an account (docs/edge.md, "Bursts from cold").

    - The first (no lease of this account on this edge yet: a new account, a restarted edge): as
      much money as one lease may hold (``max_amount``), and ``FIRST_REQUESTS`` requests like this
      one, so that a burst is served locally from its first round trip on. Billing grants at most
      half the available balance, so this asks for no more money than an account has, and every
      request still reserves its own worst case from it: the overspend bound is unchanged.
    - After a lease whose demand used up half of a slice: twice that lease (demand grows by
      doubling per round trip, not by what was admitted before the renewal was asked).
    - After a lease its window ended with little used: twice what it admitted, at least a few
      requests like this one (an idle account's money is not held for nothing).
    - And room for ``waiting`` requests like this one at least: the requests of a burst that wait
      for this answer (:meth:`Leases.admit_after_grant`). Doubling alone made a burst of a few
      hundred new streams per account a chain of renewals, one round trip each, while its
      requests waited and, past the admission timeout, each asked billing for a hold of its own.
    A lease renewed in place is measured from its last renewal (``Lease.fresh``), and the ask is
    what its unused part should become. Never more than the caps, never less than this one
    request.
    """
    if previous is None:
        requests, amount = FIRST_REQUESTS, max_amount
        tokens = FIRST_REQUESTS * demand.tokens
    elif _ran_low_by_use(previous):
        amount, requests, tokens = (2 * fresh for fresh in previous.fresh)
    else:
        used_amount, used_requests, used_tokens = _used(previous)
        requests = max(FEW_REQUESTS, 2 * used_requests)
        amount = max(FEW_REQUESTS * demand.cost, 2 * used_amount)
        tokens = max(FEW_REQUESTS * demand.tokens, 2 * used_tokens)
    requests = max(requests, waiting)
    amount = max(amount, waiting * demand.cost)
    tokens = max(tokens, waiting * demand.tokens)
    amount = max(demand.cost, min(amount, max_amount))
    return Ask(
        amount=max(1, amount),
        min_amount=max(1, demand.cost),
        requests=max(1, min(requests, max_requests)),
        tokens=max(1, tokens, demand.tokens),
        min_tokens=max(1, demand.tokens),
    )
