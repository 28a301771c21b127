"""The fair-share algorithm on a simulated cluster (virtual clock, no I/O): the targets of the scheduler issue.

A backend with SLOTS slots; each request holds a slot for `tokens * SECONDS_PER_TOKEN` seconds. Flooding
users keep `outstanding` requests queued or running at all times (a closed loop: a new one as soon as one
ends), which offers several times the cluster's capacity.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from core.scheduler.fair_queue import FairQueue, Ticket

SLOTS = 8
SECONDS_PER_TOKEN = 0.002  # 500 tokens: a 1 s request
MEAN_SERVICE = 1.0


@dataclass
class User:
    weight: float
    outstanding: int  # requests kept in the system (closed loop); 0: only `arrivals`
    tokens: int = 500
    joins_at: float = 0.0
    arrivals: list[float] = field(default_factory=list)  # open-loop arrival times (interactive users)


@dataclass
class Run:
    served: dict[str, list[tuple[float, float, int]]]  # user -> (dispatched, finished, tokens)
    waits: dict[str, list[float]]
    busy_slot_seconds: float
    duration: float

    def tokens(self, user: str, start: float, end: float) -> float:
        """Tokens served to `user` in [start, end), each request's tokens spread over its service time."""
        total = 0.0
        for began, ended, tokens in self.served[user]:
            overlap = min(ended, end) - max(began, start)
            if overlap > 0:
                total += tokens * overlap / (ended - began)
        return total


def simulate(users: dict[str, User], duration: float, *, seed: int = 7, jitter: float = 0.0) -> Run:
    rng = random.Random(seed)
    now = 0.0
    queue = FairQueue(burst_tokens=500, window=300, clock=lambda: now)
    events: list[tuple[float, int, str, object]] = []  # (time, seq, kind, data)
    seq = 0

    def at(time: float, kind: str, data: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (time, seq, kind, data))

    def submit(name: str) -> None:
        user = users[name]
        tokens = max(1, round(user.tokens * (1 + rng.uniform(-jitter, jitter))))
        start = queue.start_tag(hash(name), user.weight, tokens)
        queue.push(Ticket(user_id=hash(name), model='m', cost=tokens, weight=user.weight, start=start,
                          payload=(name, tokens, now)))

    for name, user in users.items():
        for _ in range(user.outstanding):
            at(user.joins_at, 'submit', name)
        for arrival in user.arrivals:
            at(arrival, 'submit', name)
    free = SLOTS
    served: dict[str, list[tuple[float, float, int]]] = {name: [] for name in users}
    waits: dict[str, list[float]] = {name: [] for name in users}
    busy = 0.0
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > duration:
            break
        if kind == 'submit':
            submit(str(data))
        else:  # a request ended: its slot frees; a closed-loop user sends the next one
            free += 1
            name = str(data)
            if users[name].outstanding:
                submit(name)
        while free and queue.waiting:
            ticket = queue.heads()[0]
            queue.discard(ticket)
            queue.sent(ticket.start)
            name, tokens, queued_at = ticket.payload
            service = tokens * SECONDS_PER_TOKEN
            served[name].append((now, now + service, tokens))
            waits[name].append(now - queued_at)
            busy += min(service, duration - now)
            free -= 1
            at(now + service, 'done', name)
    return Run(served, waits, busy, duration)


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def test_three_equal_users_flooding_get_equal_tokens_in_every_10_s_window() -> None:
    users = {name: User(weight=1, outstanding=3 * SLOTS) for name in 'abc'}  # each offers 3x the cluster
    run = simulate(users, duration=120, jitter=0.5)
    for start in range(0, 120, 10):
        index = jain([run.tokens(name, start, start + 10) for name in users])
        assert index >= 0.98, (start, index)


def test_weights_1_2_3_under_saturation_share_tokens_1_2_3() -> None:
    users = {'student': User(weight=1, outstanding=2 * SLOTS), 'staff': User(weight=2, outstanding=2 * SLOTS),
             'faculty': User(weight=3, outstanding=2 * SLOTS)}
    run = simulate(users, duration=300, jitter=0.5)
    total = sum(run.tokens(name, 10, 300) for name in users)
    for name, user in users.items():
        share, entitled = run.tokens(name, 10, 300) / total, user.weight / 6
        assert abs(share - entitled) <= 0.05 * entitled, (name, share, entitled)


def test_a_lone_user_uses_the_whole_idle_cluster() -> None:
    run = simulate({'alone': User(weight=1, outstanding=SLOTS + 2)}, duration=60)
    assert run.busy_slot_seconds / (SLOTS * 60) >= 0.95


@pytest.mark.parametrize('weight', [1, 3])
def test_a_second_user_gets_its_fair_share_within_two_service_times(weight: int) -> None:
    users = {'first': User(weight=1, outstanding=3 * SLOTS),
             'second': User(weight=weight, outstanding=3 * SLOTS, joins_at=60.0)}
    run = simulate(users, duration=120)
    entitled = weight / (1 + weight)
    window = (60 + 2 * MEAN_SERVICE, 60 + 6 * MEAN_SERVICE)  # after two service times, and from then on
    share = run.tokens('second', *window) / sum(run.tokens(name, *window) for name in users)
    assert share >= entitled - 0.05, share


def test_a_light_interactive_user_next_to_a_flooder_waits_less_than_one_service_time() -> None:
    rng = random.Random(3)
    arrivals = sorted(rng.uniform(5, 295) for _ in range(60))  # one question every few seconds
    users = {'flooder': User(weight=1, outstanding=4 * SLOTS),
             'interactive': User(weight=1, outstanding=0, tokens=200, arrivals=arrivals)}
    run = simulate(users, duration=300)
    waits = sorted(run.waits['interactive'])
    assert len(waits) == 60
    assert waits[int(0.95 * len(waits)) - 1] <= MEAN_SERVICE


def test_heads_come_lowest_start_tag_first_across_models_and_skip_what_left() -> None:
    queue = FairQueue(burst_tokens=0, clock=lambda: 0.0)
    tickets = []
    for user, model in ((1, 'a'), (1, 'b'), (2, 'a'), (2, 'b')):
        start = queue.start_tag(user, 1, 100)
        tickets.append(Ticket(user_id=user, model=model, cost=100, weight=1, start=start))
        queue.push(tickets[-1])
    # Each user's second request starts where its first ends; equal tags go in arrival order.
    assert [(t.user_id, t.model, t.start) for t in queue.heads()] == [(1, 'a', 0), (1, 'b', 100)]
    queue.discard(tickets[0])
    assert queue.waiting == 3
    assert [(t.user_id, t.model) for t in queue.heads()] == [(2, 'a'), (1, 'b')]


def test_a_heavier_user_is_behind_in_deficit_after_being_served_and_is_forgotten_after_the_window() -> None:
    now = 0.0
    queue = FairQueue(burst_tokens=100, window=300, clock=lambda: now)
    for _ in range(5):
        queue.sent(queue.start_tag(1, 1, 1000))
    assert queue.deficit(1) > 0  # served ahead of everyone else
    assert queue.deficit(2) == 0  # never seen
    now = 301.0
    assert queue.forget_idle() == 1 and queue.deficit(1) == 0
