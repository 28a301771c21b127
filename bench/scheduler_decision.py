"""Benchmark: the cost of one scheduling decision with a deep queue.

    python -m bench.scheduler_decision

1,000 queued requests from 200 users (weights 1, 2, 3, 10) for 10 models on 20 backends. One decision is
what the dispatcher does when a slot frees: take the lowest start tag among the models' queue heads, rank
that model's backends by score, grant the ticket (discard it from the queue, move virtual time) — and, to
keep the queue 1,000 deep, one new request is tagged and queued. Prints p50/p99 in µs. Target (scheduler
issue): p99 <= 50 µs.
"""

from __future__ import annotations

import random
import time

from core.registry.view import BackendState, ModelInfo, RegistryView
from core.scheduler.fair_queue import FairQueue, Ticket
from core.scheduler.ledger import LocalLedger
from core.scheduler.scheduler import FairScheduler

USERS, MODELS, BACKENDS, QUEUED, DECISIONS = 200, 10, 20, 1000, 20_000


def main() -> None:
    rng = random.Random(1)
    models = [f'model-{i}' for i in range(MODELS)]
    view = RegistryView()
    view.replace([BackendState(id=b, name=f'b{b}', url=f'http://b{b}', engine='vllm', max_concurrent=8,
                               status='healthy', models={m: ModelInfo(name=m) for m in rng.sample(models, 3)})
                  for b in range(BACKENDS)])
    scheduler = FairScheduler(view, LocalLedger(view), queue_timeout=60)
    queue: FairQueue = scheduler.fair_queue
    weights = {user: rng.choice((1, 2, 3, 10)) for user in range(USERS)}

    def enqueue() -> None:
        user = rng.randrange(USERS)
        cost = rng.randint(50, 2000)
        model = rng.choice([m for m in models if view.serving(m)])
        queue.push(Ticket(user_id=user, model=model, cost=cost, weight=weights[user],
                          start=queue.start_tag(user, weights[user], cost)))

    for _ in range(QUEUED):
        enqueue()
    samples = []
    for _ in range(DECISIONS):
        began = time.perf_counter_ns()
        ticket = queue.heads()[0]
        candidates = scheduler._candidates(ticket.model, ticket.exclude)  # what _dispatch ranks
        assert candidates
        queue.discard(ticket)
        queue.sent(ticket.start)
        enqueue()
        samples.append(time.perf_counter_ns() - began)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000
    print(f'one decision, {QUEUED} queued, {USERS} users, {BACKENDS} backends, {MODELS} models: '
          f'p50 {p50:.1f} µs, p99 {p99:.1f} µs ({DECISIONS:,} decisions)')


if __name__ == '__main__':
    main()
