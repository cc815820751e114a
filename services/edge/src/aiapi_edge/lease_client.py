"""Admission leases: this edge's side of billing's lease subjects (the I/O around :mod:`.lease_math`).

A request whose account has a usable lease here is admitted with no round trip. Otherwise, or
when the lease runs low, one grant request per account goes to billing in the background, and
the request itself takes the per-request path (:mod:`.admission`). A lease still in use that runs
low (or late in its window) is renewed in place: billing grows it and moves its window on, one
transaction and no close. A lease this edge stops
admitting with (it was replaced, its window ended, the plan or the account's terms changed, the
edge stops) is closed
with what it admitted, so billing returns the rest to the account at once.

Top-ups (more money for a long stream admitted under a lease) and the close of one lease never
overlap: billing counts a top-up into what the close reported only if it arrives after it, so
the two go one at a time, in the order the edge sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiapi_shared.admission import (
    LEASE_CLOSE_SUBJECT,
    LEASE_GRANT_SUBJECT,
    LEASE_TOP_UP_SUBJECT,
    LeaseCloseReply,
    LeaseCloseRequest,
    LeaseGrantReply,
    LeaseGrantRequest,
    LeaseTopUpReply,
    LeaseTopUpRequest,
)
from aiapi_shared.bus import Bus, BusError, NoResponders
from aiapi_shared.events.base import Record
from aiapi_shared.lifecycle import unless_stopped

from aiapi_edge.lease_math import UNCOVERABLE, Ask, Demand, Lease, next_ask
from aiapi_edge.metrics import Metrics

log = logging.getLogger("aiapi.edge.lease_client")

R = TypeVar("R", bound=Record)

SWEEP_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0
CLOSE_ATTEMPTS = 20  # then billing's expiry returns the money


class LeaseRpcFailed(Exception):
    """Billing did not answer (or answered nonsense); the caller decides what that means."""

    def __init__(self, detail: str, *, maybe_applied: bool = True) -> None:
        super().__init__(detail)
        self.maybe_applied = maybe_applied  # False: the request certainly reached no one


@dataclass(slots=True)
class HeldLease:
    """A lease and what the edge needs around it: one RPC at a time, and whether the close went.
    Requests admitted under it keep it (through their share) until they are done."""

    lease: Lease
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    close_sent: bool = False
    close_uncertain: bool = False


@dataclass(slots=True)
class LeaseShare:
    """One request's part of a lease: what it reserved, which its usage event reports."""

    held: HeldLease
    reserved: int
    tokens: int

    @property
    def lease_id(self) -> str:
        return self.held.lease.lease_id


class Leases:
    def __init__(
        self,
        bus: Bus,
        metrics: Metrics,
        *,
        edge_id: str,
        timeout_s: float,
        max_amount: int,
        max_requests: int,
        rpc_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._edge_id = edge_id
        # How long a grant, renewal or close may take: they run in the background, so a busy
        # billing that answers in a second is still an answer (a timed-out grant is asked again
        # and handed back, work for billing, which made storms of retries when it was busy).
        self._rpc_timeout_s = rpc_timeout_s or timeout_s
        # How long a request waits for its account's grant on its way: as long as the grant may
        # take. A burst of new streams found billing busy (its own grants and everything else)
        # and the edge's loop late by a second or more; with the admission timeout (0.5 s) most
        # of the burst gave up on the grant that was coming and asked billing for a hold each
        # (3,700 of 5,000 new streams), work that made billing, and so the grant, slower still.
        # A grant that fails or is declined wakes its waiters at once (billing then decides).
        self._grant_wait_s = max(timeout_s, self._rpc_timeout_s)
        self._max_amount = max_amount
        self._max_requests = max_requests
        self._clock = clock
        self._current: dict[str, HeldLease] = {}
        # Accounts whose grant is on its way, and what resolves when its answer is applied.
        self._asking: dict[str, asyncio.Future[None]] = {}
        # Requests waiting for their account's grant or renewal (a burst): the next ask makes
        # room for all of them, so a burst takes one more round trip, not a doubling chain.
        self._waiting: dict[str, int] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # account -> (until, last delay)
        self._upkeep = asyncio.Event()  # set when there is a lease or a refusal to look after
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- the request path (synchronous: no await between the check and the reservation) -------

    def admit(self, account_id: str, plan: str, demand: Demand) -> LeaseShare | None:
        """Admit against this account's lease, or None (and a lease is asked for if none is
        usable or the current one runs low)."""
        if demand.cost >= UNCOVERABLE or self._stopping:
            return None
        now = self._clock()
        held = self._current.get(account_id)
        if held is None:
            self._ask(account_id, plan, demand, None)
            return None
        lease = held.lease
        if not lease.usable(plan, now, demand.terms):
            self._retire(held)
            self._ask(account_id, plan, demand, lease)  # sized from what it admitted
            return None
        if not lease.fits(demand):
            self._ask(account_id, plan, demand, lease, renew=held)
            return None
        lease.admit(demand)
        lease.last_used = now
        if lease.running_low(now):
            self._ask(account_id, plan, demand, lease, renew=held)
        return LeaseShare(held, demand.cost, demand.tokens)

    def forget(self, account_id: str) -> None:
        """Billing refused this account (suspended, say): stop admitting with its lease."""
        held = self._current.get(account_id)
        if held is not None:
            self._retire(held)

    # -- asking for a lease ---------------------------------------------------------------------

    def _ask(
        self,
        account_id: str,
        plan: str,
        demand: Demand,
        previous: Lease | None,
        *,
        renew: HeldLease | None = None,
    ) -> None:
        if account_id in self._asking:
            return
        until, _ = self._backoff.get(account_id, (0.0, 0.0))
        if self._clock() < until:
            return
        self._asking[account_id] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(account_id, 0)
        if renew is not None:
            self._spawn(self._renew(account_id, demand, renew, waiting))
        else:
            self._spawn(self._grant(account_id, plan, demand, previous, waiting))

    def granting(self, account_id: str) -> bool:
        """Whether a grant for this account is on its way."""
        return account_id in self._asking

    async def admit_after_grant(
        self, account_id: str, plan: str, demand: Demand
    ) -> LeaseShare | None:
        """Wait for the account's grant on its way (at most as long as the grant may take), then
        admit against it. A burst's requests that find no lease wait for the one round trip of the
        grant rather than each make one of their own (and billing a hold each): the first
        seconds of a new account, or of a restarted edge, run on the lease as soon as it is
        there. A request that the answer still does not cover (the burst's other requests took
        what a renewal added) waits for the next one it asks for, within the same timeout. None
        when it was declined, failed or did not come in time: billing decides."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grant_wait_s
        self._waiting[account_id] = self._waiting.get(account_id, 0) + 1
        try:
            while (answered := self._asking.get(account_id)) is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(answered), deadline - loop.time())
                except TimeoutError:
                    return None
                share = self.admit(account_id, plan, demand)  # asks again if it does not fit
                if share is not None or loop.time() >= deadline:
                    return share
            return self.admit(account_id, plan, demand)
        finally:
            left = self._waiting[account_id] - 1
            if left:
                self._waiting[account_id] = left
            else:
                del self._waiting[account_id]

    async def _grant(
        self, account_id: str, plan: str, demand: Demand, previous: Lease | None, waiting: int
    ) -> None:
        ask = self._next_ask(demand, previous, waiting)
        request = LeaseGrantRequest(
            lease_id=f"lease_{secrets.token_hex(16)}",
            account_id=account_id,
            plan=plan,
            edge_id=self._edge_id,
            amount=ask.amount,
            min_amount=ask.min_amount,
            requests=ask.requests,
            tokens=ask.tokens,
            min_tokens=ask.min_tokens,
        )
        asked_at = self._clock()
        try:
            reply = await self._rpc(LEASE_GRANT_SUBJECT, request, LeaseGrantReply)
        except LeaseRpcFailed as exc:
            if exc.maybe_applied:
                # Billing may still have granted it: ask again under the same id (a retry gets
                # the same grant) and hand it straight back, so its money is not held until it
                # expires.
                self._spawn(self._recover(request))
            self._back_off(account_id)
            return
        finally:
            self._answered(account_id)
        self._metrics.admissions.labels(f"lease_{reply.decision}").inc()
        if reply.decision != "granted":
            self._back_off(account_id)
            return
        self._backoff.pop(account_id, None)
        lease = Lease.granted_at(
            lease_id=request.lease_id,
            account_id=account_id,
            plan=plan,
            amount=reply.amount,
            requests=reply.requests,
            tokens=reply.tokens,
            asked_at=asked_at,
            admit_for_s=reply.admit_for_s,
            terms=demand.terms,
        )
        held = HeldLease(lease)
        if self._stopping:  # granted while the edge stops: hand it straight back
            self._retire(held)
            return
        replaced = self._current.get(account_id)
        self._current[account_id] = held
        self._upkeep.set()
        if replaced is not None:
            self._retire(replaced)

    def _next_ask(self, demand: Demand, previous: Lease | None, waiting: int) -> Ask:
        return next_ask(
            demand,
            previous,
            max_amount=self._max_amount,
            max_requests=self._max_requests,
            waiting=waiting,
        )

    def _answered(self, account_id: str) -> None:
        answered = self._asking.pop(account_id, None)
        if answered is not None and not answered.done():
            # Resolved once the answer is applied (the rest of the caller runs before any
            # waiter does: it does not await).
            answered.set_result(None)

    async def _renew(self, account_id: str, demand: Demand, held: HeldLease, waiting: int) -> None:
        """Renew the account's lease in place with what it has admitted so far. No retry of a
        renewal that got no answer: billing may have grown the lease, which the edge does not
        know of and its close hands back, the same as what was not used."""
        lease = held.lease
        ask = self._next_ask(demand, lease, waiting)
        request = LeaseGrantRequest(
            lease_id=lease.lease_id,
            account_id=account_id,
            plan=lease.plan,
            edge_id=self._edge_id,
            amount=ask.amount,
            min_amount=ask.min_amount,
            requests=ask.requests,
            tokens=ask.tokens,
            min_tokens=ask.min_tokens,
            renew=True,
            admitted_requests=lease.admitted,
            reserved_amount=lease.reserved,
            reserved_tokens=lease.reserved_tokens,
        )
        asked_at = self._clock()
        try:
            reply = await self._rpc(LEASE_GRANT_SUBJECT, request, LeaseGrantReply)
        except LeaseRpcFailed:
            self._back_off(account_id)
            return
        finally:
            self._answered(account_id)
        self._metrics.admissions.labels(f"lease_renewal_{reply.decision}").inc()
        if reply.decision != "granted":
            # No more on this lease (billing holds too little, or it is no longer open there):
            # hand it back; the next request asks for a new one, after a pause.
            self._back_off(account_id)
            self._retire(held)
            return
        self._backoff.pop(account_id, None)
        if not lease.closing:  # else its close reports what it admitted; billing does the rest
            lease.renewed(
                amount=reply.amount,
                requests=reply.requests,
                tokens=reply.tokens,
                asked_at=asked_at,
                admit_for_s=reply.admit_for_s,
            )

    async def _recover(self, request: LeaseGrantRequest) -> None:
        for _ in range(CLOSE_ATTEMPTS):
            await asyncio.sleep(self._rpc_timeout_s)
            try:
                reply = await self._rpc(LEASE_GRANT_SUBJECT, request, LeaseGrantReply)
            except LeaseRpcFailed:
                continue
            if reply.decision == "granted":
                await self._send_close(
                    LeaseCloseRequest(
                        lease_id=request.lease_id,
                        account_id=request.account_id,
                        admitted_requests=0,
                        reserved_amount=0,
                        reserved_tokens=0,
                    )
                )
            return

    def _back_off(self, account_id: str) -> None:
        _, last = self._backoff.get(account_id, (0.0, 0.0))
        delay = min(MAX_BACKOFF_S, max(1.0, 2 * last))
        self._backoff[account_id] = (self._clock() + delay, delay)
        self._upkeep.set()

    # -- top-ups and closing --------------------------------------------------------------------

    async def top_up(self, share: LeaseShare, amount: int) -> bool:
        """Ask billing for ``amount`` more on the share's lease, for the share's request."""
        held = share.held
        lease = held.lease
        if held.close_uncertain:
            return False  # a close may still arrive after this top-up and would not count it
        request = LeaseTopUpRequest(
            lease_id=lease.lease_id, account_id=lease.account_id, amount=amount
        )
        async with held.lock:
            try:
                reply = await self._rpc(LEASE_TOP_UP_SUBJECT, request, LeaseTopUpReply)
            except LeaseRpcFailed:
                return False
            if not reply.granted:
                return False
            share.reserved += amount
            if not held.close_sent:
                lease.topped_up(amount)
            return True

    def _retire(self, held: HeldLease) -> None:
        lease = held.lease
        if lease.closing:
            return
        lease.closing = True
        if self._current.get(lease.account_id) is held:
            del self._current[lease.account_id]
        self._spawn(self._close(held))

    async def _close(self, held: HeldLease) -> None:
        lease = held.lease
        async with held.lock:
            held.close_sent = True
            closed = await self._send_close(
                LeaseCloseRequest(
                    lease_id=lease.lease_id,
                    account_id=lease.account_id,
                    admitted_requests=lease.admitted,
                    reserved_amount=lease.reserved,
                    reserved_tokens=lease.reserved_tokens,
                )
            )
            held.close_uncertain = not closed

    async def _send_close(self, request: LeaseCloseRequest) -> bool:
        for attempt in range(CLOSE_ATTEMPTS):
            try:
                await self._rpc(LEASE_CLOSE_SUBJECT, request, LeaseCloseReply)
            except LeaseRpcFailed:
                await asyncio.sleep(min(MAX_BACKOFF_S, self._rpc_timeout_s * 2**attempt))
                continue
            self._metrics.admissions.labels("lease_closed").inc()
            return True
        log.warning(
            "lease not closed; billing's expiry returns it", extra={"lease": request.lease_id}
        )
        return False

    # -- upkeep ---------------------------------------------------------------------------------

    async def sweep(self, stop: asyncio.Event) -> None:
        """Close leases whose window ended or whose account stopped sending, so an idle
        account's money is not held. With no lease and no refusal to look after, it sleeps
        until there is one (no timer at rest)."""
        while not stop.is_set():
            if not self._current and not self._backoff:
                self._upkeep.clear()
                if await unless_stopped(self._upkeep.wait(), stop) is None:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)
            now = self._clock()
            for held in list(self._current.values()):
                if now >= held.lease.deadline or held.lease.idle(now):
                    self._retire(held)
            # A refusal long past is forgotten: the next ask starts from the shortest wait.
            for account_id, (until, _) in list(self._backoff.items()):
                if now > until + MAX_BACKOFF_S:
                    del self._backoff[account_id]

    async def close_all(self, timeout_s: float) -> None:
        """On the way down: hand every lease back, and any granted meanwhile (what billing does
        not hear of in ``timeout_s`` expires there)."""
        self._stopping = True
        for held in list(self._current.values()):
            self._retire(held)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending := [t for t in self._tasks if not t.done()]:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(pending, timeout=left)
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rpc(self, subject: str, request: Record, reply_model: type[R]) -> R:
        if not self._bus.is_connected:
            raise LeaseRpcFailed("NATS is not connected", maybe_applied=False)
        try:
            return await self._bus.call(
                subject, request, reply_model, timeout_s=self._rpc_timeout_s
            )
        except NoResponders as exc:
            raise LeaseRpcFailed("no billing replica answers leases", maybe_applied=False) from exc
        except BusError as exc:
            raise LeaseRpcFailed(type(exc).__name__) from exc
