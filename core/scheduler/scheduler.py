"""The scheduler: which request runs next, on which backend, and the slot it holds while it runs.

`FairScheduler.acquire()` is the whole admission path of a request:

1. candidates: the healthy backends serving the model (not draining, not disabled, node online, not
   already tried), best first by `core.scheduler.scoring`;
2. fast path: when nobody is queued, the admission ledger grants a slot on the first candidate with
   room (fleet-wide with Redis) and the request goes at once;
3. otherwise the request queues as a ticket in `core.scheduler.fair_queue` and waits, up to the queue
   timeout, until a slot frees anywhere; then tickets are served lowest virtual start tag first, among
   those whose backends have room.

The slot is released on every exit path (`Slot.release`, idempotent and synchronous), and then told how
many tokens the request really used, so that the user's share is charged the truth, not the estimate.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, replace

from core.errors import BackendUnavailable
from core.registry.view import BackendState, RegistryView
from core.scheduler.fair_queue import FairQueue, Ticket
from core.scheduler.ledger import AdmissionLedger, FairAsk, FleetFairness, Lease
from core.scheduler.scoring import rank

log = logging.getLogger('mindrouter.scheduler')


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, with what weight, for about how many tokens (prompt estimate + expected completion)."""

    user_id: int
    weight: float = 1.0
    cost: float = 1.0


ANONYMOUS = Requester(user_id=0)  # internal callers and tests: one user, so first come first served


@dataclass(slots=True)
class UserQueue:
    user_id: int
    weight: float
    queued: int
    running: int
    deficit_tokens: int  # ahead of its fair share (positive) or behind it (negative), in tokens
    longest_wait_s: float


@dataclass(slots=True)
class BackendQueue:
    backend_id: int
    name: str
    in_flight: int  # all workers
    max_concurrent: int
    status: str
    queued_for: int  # queued requests this backend could serve


@dataclass(slots=True)
class QueuedRequest:
    user_id: int
    model: str
    cost_tokens: int
    waited_s: float
    start_tag: float


@dataclass(slots=True)
class QueueSnapshot:
    queued: int  # in this process (each worker queues its own requests)
    virtual_time: float
    wait_p50_s: float
    wait_p95_s: float
    users: list[UserQueue]
    backends: list[BackendQueue]
    requests: list[QueuedRequest]  # next to be served first


class Slot:
    """A held place on a backend. `release()` is idempotent and synchronous: call it on every exit path."""

    __slots__ = ('_lease', '_ledger', '_scheduler', 'queued_ms', 'requester')

    def __init__(self, lease: Lease, queued_ms: float, ledger: AdmissionLedger, scheduler: FairScheduler,
                 requester: Requester) -> None:
        self._lease = lease
        self.queued_ms = queued_ms
        self._ledger: AdmissionLedger | None = ledger
        self._scheduler = scheduler
        self.requester = requester

    @property
    def backend(self) -> BackendState:
        return self._lease.backend

    def release(self, used_tokens: int | None = None) -> None:
        """Give the slot back; `used_tokens`, when known, corrects the user's charge."""
        ledger, self._ledger = self._ledger, None
        if ledger is None:
            return
        ledger.release(self._lease)
        if used_tokens is not None:
            self._scheduler.charge(self.requester, used_tokens - self.requester.cost)


class FairScheduler:
    def __init__(self, registry: RegistryView, ledger: AdmissionLedger, *, queue_timeout: float,
                 fair_queue: FairQueue | None = None) -> None:
        self._registry = registry
        self._ledger = ledger
        self._queue_timeout = queue_timeout
        self.fair_queue = fair_queue or FairQueue()
        # With Redis the clock and the queue order are the fleet's (the ledger keeps them), else this process's.
        self._fleet = ledger if isinstance(ledger, FleetFairness) else None
        self._tickets = itertools.count(1)
        self._weights: dict[int, float] = {}  # each user's weight, as its latest request said
        self._dispatcher: asyncio.Task[None] | None = None
        self._look_again = False
        ledger.on_freed(self.wake)

    async def acquire(self, model: str, *, requester: Requester = ANONYMOUS,
                      exclude: frozenset[int] = frozenset()) -> Slot:
        """A slot on a backend serving `model` (already resolved), waiting while all are full."""
        started = time.perf_counter()
        candidates = self._candidates(model, exclude)
        if not candidates:
            raise self._unavailable(model, exclude)
        queue = self.fair_queue
        self._weights[requester.user_id] = requester.weight
        shared: FairAsk | None = None
        if self._fleet is not None:  # one round trip: tagged on the fleet's clock, granted in the fleet's order
            shared = FairAsk(ticket=f'{self._fleet.worker_id}:{next(self._tickets)}', user_id=requester.user_id,
                             weight=requester.weight, cost=requester.cost, model=model)
            lease, tag = await self._fleet.acquire_fair(candidates, shared)
            if tag is None:  # Redis unreachable: this worker's own clock and queue
                shared, tag = None, queue.start_tag(requester.user_id, requester.weight, requester.cost)
            else:
                shared = replace(shared, tag=tag)
            start = tag
        else:
            start = queue.start_tag(requester.user_id, requester.weight, requester.cost)
            # Nobody queued: take a slot if there is one. Otherwise queue, so that the order is the fair one.
            lease = None if queue.waiting else await self._ledger.try_acquire(candidates, user_id=requester.user_id)
        if lease is None:
            ticket = Ticket(user_id=requester.user_id, model=model, cost=requester.cost, weight=requester.weight,
                            start=start, exclude=exclude, shared=shared,
                            payload=asyncio.get_running_loop().create_future())
            lease = await self._wait(ticket)
        else:
            queue.sent(start)
        return Slot(lease, (time.perf_counter() - started) * 1000, self._ledger, self, requester)

    def charge(self, requester: Requester, tokens: float) -> None:
        """Correct a request's charge by `tokens` (the real usage minus the estimate; or minus the whole
        estimate for a request that produced nothing)."""
        if self._fleet is not None:
            self._fleet.correct(requester.user_id, tokens, requester.weight)
        else:
            self.fair_queue.correct(requester.user_id, tokens)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return self.fair_queue.waiting

    def wake(self) -> None:
        """A slot may be free somewhere: hand out what can be handed out, in fair order."""
        if not self.fair_queue.waiting:
            return
        self._look_again = True
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name='slot-dispatch')

    async def snapshot(self, *, limit: int = 200) -> QueueSnapshot:
        """The queue as an admin sees it: per user and per backend, and the oldest queued requests."""
        now = time.monotonic()
        queue = self.fair_queue
        tickets = sorted(queue.tickets())
        by_user: dict[int, list[Ticket]] = {}
        for ticket in tickets:
            by_user.setdefault(ticket.user_id, []).append(ticket)
        virtual, finish = queue.virtual, dict[int, float]()
        if self._fleet is not None:
            try:
                virtual, finish = await self._fleet.fair_state()
            except Exception as exc:  # Redis unreachable: what this worker knows
                log.warning('queue snapshot without the fleet\'s fair-share state: %s', exc)

        def deficit(user_id: int, weight: float) -> int:
            if self._fleet is None:
                return round(queue.deficit(user_id))
            ahead = max(finish.get(user_id, virtual) - virtual, -queue.burst_tokens)
            return round(ahead * weight)

        weights = {**self._weights, **queue.users()}
        known = sorted(set(weights) | set(finish) | set(by_user))
        users = [UserQueue(user_id=user_id, weight=weights.get(user_id, 1.0), queued=len(by_user.get(user_id, [])),
                           running=self._ledger.user_in_flight(user_id),
                           deficit_tokens=deficit(user_id, weights.get(user_id, 1.0)),
                           longest_wait_s=round(max((now - t.enqueued_at for t in by_user.get(user_id, [])),
                                                    default=0.0), 3))
                 for user_id in known]
        in_flight = await self._ledger.in_flight()
        backends = [BackendQueue(backend_id=b.id, name=b.name, in_flight=in_flight.get(b.id, 0),
                                 max_concurrent=b.max_concurrent, status=b.status,
                                 queued_for=sum(1 for t in tickets if t.model in b.models and b.id not in t.exclude))
                    for b in self._registry.backends]
        waits = sorted(now - t.enqueued_at for t in tickets)
        return QueueSnapshot(
            queued=len(tickets), virtual_time=round(virtual, 3), users=users, backends=backends,
            wait_p50_s=round(waits[len(waits) // 2], 3) if waits else 0.0,
            wait_p95_s=round(waits[max(0, int(len(waits) * 0.95) - 1)], 3) if waits else 0.0,
            requests=[QueuedRequest(user_id=t.user_id, model=t.model, cost_tokens=round(t.cost),
                                    waited_s=round(now - t.enqueued_at, 3), start_tag=round(t.start, 3))
                      for t in tickets[:limit]])

    def _candidates(self, model: str, exclude: frozenset[int]) -> list[BackendState]:
        """Healthy backends serving the model, best first; never one whose circuit breaker is open (a live
        request failed on it and the check that would close it has not passed yet)."""
        now = time.monotonic()
        return rank([b for b in self._registry.serving(model)
                     if b.healthy and b.id not in exclude and b.cooldown_until <= now], model)

    def _unavailable(self, model: str, exclude: frozenset[int]) -> BackendUnavailable:
        now = time.monotonic()
        broken = [b.cooldown_until - now for b in self._registry.serving(model)
                  if b.healthy and b.id not in exclude and b.cooldown_until > now]
        if broken:
            return BackendUnavailable(f'every backend serving {model!r} failed a request in the last few seconds and '
                                      'is being checked again; try again shortly', retry_after=min(broken))
        return BackendUnavailable(f'no healthy backend is serving {model!r} right now', retry_after=10)

    async def _wait(self, ticket: Ticket) -> Lease:
        future: asyncio.Future[Lease] = ticket.payload
        self.fair_queue.push(ticket)
        self._ledger.note_waiting(self.fair_queue.waiting)
        self.wake()
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._queue_timeout)
        except BaseException as exc:  # timed out, or the client went away while queued
            self.fair_queue.discard(ticket)
            if ticket.shared is not None and self._fleet is not None:  # never served: out of the fleet's queue
                self._fleet.dequeue(ticket.shared, refund_tokens=ticket.cost)
            else:  # never served: nothing to charge
                self.fair_queue.correct(ticket.user_id, -ticket.cost)
            if future.done() and not future.cancelled():
                self._ledger.release(future.result())  # granted just as we gave up: pass it on
            else:
                future.cancel()
            if isinstance(exc, TimeoutError):
                raise BackendUnavailable(f'every backend serving {ticket.model!r} stayed busy for '
                                         f'{self._queue_timeout:g} s; try again later',
                                         retry_after=min(self._queue_timeout, 30.0)) from None
            raise
        finally:
            self._ledger.note_waiting(self.fair_queue.waiting)

    async def _dispatch(self) -> None:
        """Grant free slots to queued tickets, lowest start tag first. A model whose backends are all full is
        passed over for the rest of the pass, so that requests for other models are not held up by it."""
        queue = self.fair_queue
        while self._look_again:
            self._look_again = False
            full: set[str] = set()
            while True:
                ticket = next((t for t in queue.heads() if t.model not in full), None)
                if ticket is None:
                    break
                candidates = self._candidates(ticket.model, ticket.exclude)
                try:
                    if not candidates:
                        lease = None
                    elif ticket.shared is not None and self._fleet is not None:
                        lease, _ = await self._fleet.acquire_fair(candidates, ticket.shared)
                    else:
                        lease = await self._ledger.try_acquire(candidates, user_id=ticket.user_id)
                except Exception as exc:  # the ledger's store is unreachable: the waiters time out with a 503
                    log.warning('admission: could not hand out a slot: %s', exc)
                    return
                if lease is None:
                    full.add(ticket.model)
                    continue
                future: asyncio.Future[Lease] = ticket.payload
                if ticket.done or future.done():  # gave up while we asked: the slot goes straight back
                    self._ledger.release(lease)
                    continue
                queue.discard(ticket)
                queue.sent(ticket.start)
                future.set_result(lease)
