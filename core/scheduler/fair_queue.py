"""Fair share between users: who goes next when a backend slot frees.

Weighted fair queueing on virtual time (start-time fair queueing, the exact form of weighted deficit
round robin). Every request is charged its cost in tokens (prompt estimate + expected completion,
corrected by the real usage when it ends) divided by its user's weight:

- `V`, the system's virtual time, is the start tag of the latest request sent to a backend.
- A user's next request starts at `max(F_user, V - burst)` and moves `F_user` on by `cost / weight`.
  `(F_user - V) x weight` is the user's deficit in tokens: how far ahead of its share the user is.
- Requests go out in order of their start tags, lowest first, among those a backend can take.

So, under contention, each user's tokens grow in proportion to its weight; a lone user on an idle
cluster takes every slot (nothing else competes: the queue is work-conserving); a user who was idle
neither banks credit nor carries debt beyond `burst` (the burst credit, `burst x weight` tokens, that
lets an interactive user's occasional request overtake a flooder's backlog); and a user who stops using
the cluster is forgotten after the fairness window. Tags are shared by every model, so fairness holds
across models that share backends. Plain Python, no I/O: core.scheduler.scheduler drives it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

_sequence = count()


@dataclass(slots=True, eq=False)
class Ticket:
    """One queued request."""

    user_id: int
    model: str
    cost: float  # tokens charged
    weight: float
    start: float  # virtual start tag
    exclude: frozenset[int] = frozenset()  # backends already tried (failover)
    payload: Any = None  # the scheduler's waiter
    shared: Any = None  # its entry in the fleet-wide queue (core.scheduler.ledger.FairAsk), with Redis
    enqueued_at: float = 0.0
    seq: int = field(default_factory=lambda: next(_sequence))  # arrival order breaks ties
    done: bool = False  # granted or given up: skipped where it still sits in a heap

    def __lt__(self, other: Ticket) -> bool:
        return (self.start, self.seq) < (other.start, other.seq)


@dataclass(slots=True)
class _UserClock:
    finish: float  # F: virtual time at which the user's requests so far are paid for
    weight: float
    seen: float  # monotonic time of the user's latest request or correction


class FairQueue:
    def __init__(self, *, burst_tokens: float = 512.0, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_tokens = burst_tokens
        self.window = window
        self._clock = clock
        self.virtual = 0.0
        self._users: dict[int, _UserClock] = {}
        self._heaps: dict[str, list[Ticket]] = {}  # model -> its queued tickets, lowest start tag first
        self.waiting = 0

    def start_tag(self, user_id: int, weight: float, cost: float) -> float:
        """Charge a new request to its user; its virtual start tag."""
        now = self._clock()
        user = self._users.get(user_id)
        earliest = self.virtual - self.burst_tokens
        if user is None or now - user.seen > self.window:
            user = self._users[user_id] = _UserClock(finish=earliest, weight=weight, seen=now)
        start = max(user.finish, earliest)
        user.finish, user.weight, user.seen = start + cost / weight, weight, now
        return start

    def sent(self, start: float) -> None:
        """A request with this start tag went to a backend: virtual time moves on to it."""
        if start > self.virtual:
            self.virtual = start

    def correct(self, user_id: int, tokens: float) -> None:
        """The request used `tokens` more (or, negative, fewer) than it was charged."""
        user = self._users.get(user_id)
        if user is not None and tokens:
            user.finish += tokens / user.weight
            user.seen = self._clock()

    def push(self, ticket: Ticket) -> None:
        ticket.enqueued_at = self._clock()
        heapq.heappush(self._heaps.setdefault(ticket.model, []), ticket)
        self.waiting += 1

    def discard(self, ticket: Ticket) -> None:
        """Out of the queue (granted or given up); it leaves its heap lazily."""
        if not ticket.done:
            ticket.done = True
            self.waiting -= 1

    def heads(self) -> list[Ticket]:
        """The first live ticket of every model with requests queued, lowest start tag first."""
        heads = []
        for model in list(self._heaps):
            heap = self._heaps[model]
            while heap and heap[0].done:
                heapq.heappop(heap)
            if heap:
                heads.append(heap[0])
            else:
                del self._heaps[model]
        heads.sort()
        return heads

    def tickets(self) -> Iterator[Ticket]:
        """Every live queued ticket (no order)."""
        for heap in self._heaps.values():
            yield from (ticket for ticket in heap if not ticket.done)

    def deficit(self, user_id: int) -> float:
        """How far the user is ahead of its fair share, in tokens (negative: behind, it goes first)."""
        user = self._users.get(user_id)
        return 0.0 if user is None else max(user.finish - self.virtual, -self.burst_tokens) * user.weight

    def users(self) -> dict[int, float]:
        """Every user remembered (seen within the fairness window), with its weight."""
        return {user_id: user.weight for user_id, user in self._users.items()}

    def forget_idle(self) -> int:
        """Drop users not seen for a fairness window; how many."""
        cutoff = self._clock() - self.window
        idle = [user_id for user_id, user in self._users.items() if user.seen < cutoff]
        for user_id in idle:
            del self._users[user_id]
        return len(idle)
