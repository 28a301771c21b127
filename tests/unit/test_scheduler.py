"""Backend choice and slots: least loaded first, never past max_concurrent, FIFO waits, no leaks."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import BackendUnavailable
from core.registry.view import BackendState, ModelInfo, RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.picker import LeastLoadedPicker


def backend(backend_id: int, *, slots: int = 2, status: str = 'healthy', models: tuple[str, ...] = ('m',)
            ) -> BackendState:
    return BackendState(id=backend_id, name=f'b{backend_id}', url=f'http://b{backend_id}', engine='ollama',
                        max_concurrent=slots, status=status, models={m: ModelInfo(name=m) for m in models})


def picker_for(*backends: BackendState, queue_timeout: float = 1.0) -> tuple[LeastLoadedPicker, RegistryView]:
    view = RegistryView()
    view.replace(backends)
    return LeastLoadedPicker(view, LocalLedger(view), queue_timeout=queue_timeout), view


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


async def test_backends_cooling_down_are_avoided_but_used_when_nothing_else_can_serve() -> None:
    picker, view = picker_for(backend(1), backend(2))
    first, second = view.backends
    first.cooldown_until = time.monotonic() + 60
    slot = await picker.acquire('m')
    assert slot.backend is second
    slot.release()

    second.cooldown_until = time.monotonic() + 60
    slot = await picker.acquire('m')  # both cooling down: try one rather than refuse
    assert slot.backend in (first, second)
    slot.release()


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
    picker = LeastLoadedPicker(view, ledger, queue_timeout=1)
    a1, a2, b1 = [await picker.acquire('m', user_id=u) for u in (7, 7, 8)]
    assert (ledger.user_in_flight(7), ledger.user_in_flight(8)) == (2, 1)
    assert await ledger.in_flight() == {1: 3}
    for slot in (a1, a2, b1):
        slot.release()
    assert ledger.user_in_flight(7) == 0 and await ledger.in_flight() == {}
