"""The scheduler in one process: best backend first, never past max_concurrent, fair waits, no leaks."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import BackendUnavailable
from core.registry.view import BackendState, ModelInfo, RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.scheduler import FairScheduler, Requester


def backend(backend_id: int, *, slots: int = 2, status: str = 'healthy', models: tuple[str, ...] = ('m',)
            ) -> BackendState:
    return BackendState(id=backend_id, name=f'b{backend_id}', url=f'http://b{backend_id}', engine='ollama',
                        max_concurrent=slots, status=status, models={m: ModelInfo(name=m) for m in models})


def picker_for(*backends: BackendState, queue_timeout: float = 1.0) -> tuple[FairScheduler, RegistryView]:
    view = RegistryView()
    view.replace(backends)
    return FairScheduler(view, LocalLedger(view), queue_timeout=queue_timeout), view


async def test_requests_spread_to_the_least_loaded_backend() -> None:
    picker, view = picker_for(backend(1, slots=4), backend(2, slots=2))
    slots = [await picker.acquire('m') for _ in range(6)]

    assert sorted(s.backend.id for s in slots) == [1, 1, 1, 1, 2, 2]
    assert all(b.in_flight == b.max_concurrent for b in view.backends)
    for slot in slots:
        slot.release()
        slot.release()  # idempotent
    assert all(b.in_flight == 0 for b in view.backends)


async def test_a_full_cluster_queues_first_come_first_served() -> None:
    picker, view = picker_for(backend(1, slots=1))
    held = await picker.acquire('m')
    first = asyncio.create_task(picker.acquire('m'))
    await asyncio.sleep(0)
    second = asyncio.create_task(picker.acquire('m'))
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()

    held.release()
    got = await first
    assert got.backend.id == 1 and not second.done()
    assert view.backends[0].in_flight == 1  # handed over, never above the limit
    got.release()
    (await second).release()
    assert view.backends[0].in_flight == 0


async def test_waiting_too_long_is_a_503_and_leaves_no_trace() -> None:
    picker, view = picker_for(backend(1, slots=1), queue_timeout=0.05)
    held = await picker.acquire('m')
    with pytest.raises(BackendUnavailable, match='stayed busy'):
        await picker.acquire('m')
    held.release()
    assert view.backends[0].in_flight == 0


async def test_a_waiter_that_goes_away_does_not_swallow_the_slot() -> None:
    picker, view = picker_for(backend(1, slots=1))
    held = await picker.acquire('m')
    waiter = asyncio.create_task(picker.acquire('m'))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)

    held.release()
    assert view.backends[0].in_flight == 0
    (await picker.acquire('m')).release()


async def test_only_healthy_backends_serving_the_model_are_used() -> None:
    picker, _ = picker_for(backend(1, status='unhealthy'), backend(2, models=('other',)))
    with pytest.raises(BackendUnavailable, match='no healthy backend'):
        await picker.acquire('m')


async def test_excluded_backends_are_skipped_for_failover() -> None:
    picker, _ = picker_for(backend(1), backend(2))
    slot = await picker.acquire('m', exclude=frozenset({1}))
    assert slot.backend.id == 2
    slot.release()


def test_model_names_resolve_like_ollama() -> None:
    view = RegistryView()
    view.replace([backend(1, models=('llama3.2:latest', 'qwen3:0.6b', 'org/Model-1B'))])
    assert view.resolve('llama3.2') == 'llama3.2:latest'
    assert view.resolve('llama3.2:latest') == 'llama3.2:latest'
    assert view.resolve('qwen3') is None  # only :latest is implicit
    assert view.resolve('org/Model-1B') == 'org/Model-1B'


async def test_slots_taken_before_a_registry_reload_are_released_on_the_reloaded_backend() -> None:
    picker, view = picker_for(backend(1, slots=2))
    slot = await picker.acquire('m')
    view.replace([backend(1, slots=3)])  # the periodic reload: fresh rows from the database
    assert view.backends[0].in_flight == 1 and view.backends[0].max_concurrent == 3

    slot.release()
    assert view.backends[0].in_flight == 0


async def test_a_backend_with_an_open_circuit_breaker_is_never_chosen() -> None:
    picker, view = picker_for(backend(1), backend(2))
    first, second = view.backends
    first.cooldown_until = time.monotonic() + 60
    for _ in range(3):
        slot = await picker.acquire('m')
        assert slot.backend is second
        slot.release()

    second.cooldown_until = time.monotonic() + 5
    with pytest.raises(BackendUnavailable, match='failed a request') as refused:
        await picker.acquire('m')  # both cooling down: a clear 503 that says when to come back
    assert refused.value.retry_after is not None and 4 < refused.value.retry_after <= 5
    second.cooldown_until = 0.0  # its check passed: the breaker closes
    (await picker.acquire('m')).release()

async def test_a_request_arriving_as_a_slot_frees_does_not_overtake_the_waiter() -> None:
    picker, view = picker_for(backend(1, slots=1))
    held = await picker.acquire('m')
    waiter = asyncio.create_task(picker.acquire('m'))
    await asyncio.sleep(0.01)

    held.release()
    latecomer = asyncio.create_task(picker.acquire('m'))  # before the waiter had a chance to run
    got = await waiter
    await asyncio.sleep(0.01)
    assert not latecomer.done()
    got.release()
    (await latecomer).release()
    assert view.backends[0].in_flight == 0


async def test_waiters_for_a_full_model_do_not_hold_up_another_model() -> None:
    picker, _ = picker_for(backend(1, slots=1, models=('m',)), backend(2, slots=1, models=('n',)))
    held = await picker.acquire('m')
    blocked = asyncio.create_task(picker.acquire('m'))
    await asyncio.sleep(0.01)

    other = await asyncio.wait_for(picker.acquire('n'), 1)  # queued behind the m-waiter, served at once
    assert other.backend.id == 2 and not blocked.done()
    other.release()
    held.release()
    (await blocked).release()


async def test_the_ledger_counts_each_users_running_requests() -> None:
    view = RegistryView()
    view.replace([backend(1, slots=3)])
    ledger = LocalLedger(view)
    picker = FairScheduler(view, ledger, queue_timeout=1)
    a1, a2, b1 = [await picker.acquire('m', requester=Requester(user_id=u)) for u in (7, 7, 8)]
    assert (ledger.user_in_flight(7), ledger.user_in_flight(8)) == (2, 1)
    assert await ledger.in_flight() == {1: 3}
    for slot in (a1, a2, b1):
        slot.release()
    assert ledger.user_in_flight(7) == 0 and await ledger.in_flight() == {}


async def test_a_user_arriving_behind_a_flood_is_served_next_not_last() -> None:
    picker, view = picker_for(backend(1, slots=1), queue_timeout=5)
    flooder, newcomer = Requester(user_id=1, cost=500), Requester(user_id=2, cost=500)
    held = await picker.acquire('m', requester=flooder)
    backlog = [asyncio.create_task(picker.acquire('m', requester=flooder)) for _ in range(5)]
    await asyncio.sleep(0.01)
    question = asyncio.create_task(picker.acquire('m', requester=newcomer))
    await asyncio.sleep(0.01)

    order = []
    held.release()
    for _ in range(6):
        done, _ = await asyncio.wait([question, *backlog], return_when=asyncio.FIRST_COMPLETED)
        slot = next(task for task in done if task.result() is not None).result()
        order.append(slot.requester.user_id)
        for task in done:
            if task is question:
                question = asyncio.create_task(asyncio.sleep(60, result=None))
            else:
                backlog.remove(task)
        slot.release()
    question.cancel()
    assert order[0] == 2, order  # the newcomer first, the flooder's backlog after it
    assert view.backends[0].in_flight == 0


async def test_weights_decide_the_order_under_contention() -> None:
    picker, _ = picker_for(backend(1, slots=1), queue_timeout=5)
    light, heavy = Requester(user_id=1, weight=1, cost=300), Requester(user_id=3, weight=3, cost=300)
    held = await picker.acquire('m', requester=Requester(user_id=9, cost=1))
    waiting = [asyncio.create_task(picker.acquire('m', requester=who)) for who in (light, heavy) for _ in range(4)]
    await asyncio.sleep(0.01)
    served = []
    held.release()
    while waiting:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            waiting.remove(task)
            served.append(task.result().requester.user_id)
            task.result().release()
    # Weight 3 pays a third per token: three of its requests for each of the lighter user's, to begin with.
    assert served[:4].count(3) == 3, served


async def test_the_real_usage_corrects_the_charge() -> None:
    picker, _ = picker_for(backend(1, slots=2))
    slot = await picker.acquire('m', requester=Requester(user_id=5, cost=1000))
    charged = picker.fair_queue.deficit(5)
    slot.release(used_tokens=100)  # it was a short answer
    assert picker.fair_queue.deficit(5) == pytest.approx(charged - 900)


async def test_a_request_that_gives_up_in_the_queue_is_not_charged() -> None:
    picker, _ = picker_for(backend(1, slots=1), queue_timeout=0.05)
    held = await picker.acquire('m', requester=Requester(user_id=1, cost=10))
    with pytest.raises(BackendUnavailable) as refused:
        await picker.acquire('m', requester=Requester(user_id=2, cost=5000))
    assert refused.value.retry_after is not None
    # The 5000 tokens were given back: the user still has its whole burst credit, as if it never asked.
    assert picker.fair_queue.deficit(2) == pytest.approx(-picker.fair_queue.burst_tokens)
    held.release()
