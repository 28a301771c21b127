"""The fleet-wide ledger on a real Redis: several workers (each its own ledger, client and registry, as separate
processes would have) share one backend's max_concurrent; crashes, cancellations and outages leak no slot."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as redis

from core.registry.view import BackendState, ModelInfo, RegistryView
from core.scheduler.redis_ledger import RedisLedger
from core.scheduler.resp import RespClient, RespConnectionError, RespError, RespTimeoutError, Script
from core.scheduler.scheduler import FairScheduler, Requester


def backend(backend_id: int = 1, *, slots: int) -> BackendState:
    return BackendState(id=backend_id, name=f'b{backend_id}', url=f'http://b{backend_id}', engine='ollama',
                        max_concurrent=slots, status='healthy', models={'m': ModelInfo(name='m')})


class Fleet:
    """Workers sharing one Redis under a prefix of their own; all stopped, closed and cleaned up afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f'mrtest-{uuid.uuid4().hex[:12]}'
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.clients: dict[str, redis.Redis] = {}
        self.running: list[RedisLedger] = []

    async def worker(self, *, slots: int = 2, heartbeat_ttl: float = 30.0, from_url: bool = False
                     ) -> tuple[RedisLedger, RegistryView]:
        """A started worker with backend 1. The long default TTL keeps heartbeats out of the way: a waiter
        woken within seconds was woken by pub/sub. With a client of ours unless `from_url`."""
        view = RegistryView()
        view.replace([backend(slots=slots)])
        if from_url:
            ledger = RedisLedger.from_url(self.url, view, prefix=self.prefix, heartbeat_ttl=heartbeat_ttl)
        else:
            client = redis.Redis.from_url(self.url, decode_responses=True)
            ledger = RedisLedger(client, view, prefix=self.prefix, heartbeat_ttl=heartbeat_ttl)
            self.clients[ledger.worker_id] = client
        await ledger.start()
        self.running.append(ledger)
        return ledger, view

    def key(self, name: str) -> str:
        return f'{{{self.prefix}:ledger}}:{name}'

    async def crash(self, ledger: RedisLedger) -> None:
        """What a killed process leaves behind: no stop(), no more heartbeats or releases, its leases in Redis."""
        pending = {*ledger._tasks, *([ledger._flusher] if ledger._flusher else [])}
        while pending:  # a redis-py call on Python 3.11 can swallow a cancellation: insist
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        self.running.remove(ledger)
        await self.clients[ledger.worker_id].aclose()
        await ledger._resp.close()

    async def close(self) -> list[str]:
        """Stop everyone; returns the keys that were left behind (there should be none), after deleting them."""
        for ledger in self.running:
            await ledger.stop()
        for client in self.clients.values():
            await client.aclose()
        keys = [key async for key in self.redis.scan_iter(match=f'{{{self.prefix}:ledger}}*')]
        # Keys with an expiry (the waiting flag) go by themselves; anything else would stay for good.
        left = [key for key in keys if await self.redis.pttl(key) < 0]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()
        return left


@pytest.fixture
async def fleet(redis_url: str) -> AsyncIterator[Fleet]:
    fleet = Fleet(redis_url)
    try:
        yield fleet
    finally:
        left = await fleet.close()
    assert not left, f'keys left in Redis after every worker stopped: {left}'


async def eventually_in_flight(ledger: RedisLedger, expected: dict[int, int], timeout: float = 3.0) -> None:
    """Releases go out in the background: wait for the fleet-wide counts to show them."""
    deadline = time.monotonic() + timeout
    while (counts := await ledger.in_flight()) != expected:
        assert time.monotonic() < deadline, f'fleet counts stayed {counts}, expected {expected}'
        await asyncio.sleep(0.01)


async def test_two_workers_share_one_backends_limit(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=2)
    b, view_b = await fleet.worker(slots=2)

    lease_a = await a.try_acquire(view_a.backends, user_id=None)
    lease_b = await b.try_acquire(view_b.backends, user_id=None)
    assert lease_a is not None and lease_b is not None
    assert await a.try_acquire(view_a.backends, user_id=None) is None  # 1 + 1: the engine's 2 are taken

    assert await a.in_flight() == await b.in_flight() == {1: 2}
    assert view_a.backends[0].in_flight == view_b.backends[0].in_flight == 1  # each process's own share
    await a.heartbeat()
    await b.heartbeat()
    assert view_a.backends[0].fleet_in_flight == view_b.backends[0].fleet_in_flight == 2

    a.release(lease_a)
    b.release(lease_b)
    await eventually_in_flight(a, {})
    await a.heartbeat()
    assert view_a.backends[0].fleet_in_flight == 0 and view_a.backends[0].in_flight == 0


async def test_a_release_on_one_worker_wakes_the_waiters_on_another(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=1)
    b, view_b = await fleet.worker(slots=1)
    held = await b.try_acquire(view_b.backends, user_id=None)
    assert held is not None
    assert await a.try_acquire(view_a.backends, user_id=None) is None
    a.note_waiting(1)  # what the picker says when a request queues
    await asyncio.sleep(0.1)  # the fleet's waiting flag is up
    woken = asyncio.Event()
    a.on_freed(woken.set)

    b.release(held)
    await asyncio.wait_for(woken.wait(), 0.9)  # heartbeats are 10 s apart, flag refreshes 1 s: pub/sub
    lease = await a.try_acquire(view_a.backends, user_id=None)
    assert lease is not None
    a.release(lease)


async def test_releases_are_not_announced_while_nobody_waits(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=4)
    listener = fleet.redis.pubsub()
    await listener.subscribe(a.channel)
    try:
        for _ in range(5):
            lease = await a.try_acquire(view_a.backends, user_id=None)
            assert lease is not None
            a.release(lease)
            await eventually_in_flight(a, {})  # the release went out (in the background)
        messages = []
        while (message := await listener.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
            messages.append(message)
        assert messages == []  # no queued request anywhere: no wake-up traffic for every worker
    finally:
        await listener.aclose()


async def test_a_crashed_workers_slots_come_back_once_its_heartbeat_expires(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=1)
    b, view_b = await fleet.worker(slots=1, heartbeat_ttl=1.0)
    assert await b.try_acquire(view_b.backends, user_id=4) is not None
    await fleet.crash(b)
    woken = asyncio.Event()
    a.on_freed(woken.set)

    await a.heartbeat()  # b's heartbeat has not expired yet: its slot still counts
    assert await a.in_flight() == {1: 1} and a.user_in_flight(4) == 1
    assert await a.try_acquire(view_a.backends, user_id=None) is None

    await asyncio.sleep(1.2)
    await a.heartbeat()
    assert await a.in_flight() == {} and a.user_in_flight(4) == 0
    assert woken.is_set()
    assert not await fleet.redis.sismember(fleet.key('workers'), b.worker_id)
    lease = await a.try_acquire(view_a.backends, user_id=None)
    assert lease is not None
    a.release(lease)


async def test_cancelling_an_acquire_that_redis_already_granted_holds_no_slot(fleet: Fleet) -> None:
    a, view = await fleet.worker(slots=1)
    client = a._resp  # the acquire and release scripts go through the ledger's RESP client
    real, granted = client.evalsha, asyncio.Event()

    async def reply_never_comes(*args: Any, **kwargs: Any) -> Any:
        del client.evalsha  # only this one call
        await real(*args, **kwargs)
        granted.set()
        await asyncio.Event().wait()

    client.evalsha = reply_never_comes  # type: ignore[method-assign]
    acquiring = asyncio.create_task(a.try_acquire(view.backends, user_id=5))
    await granted.wait()
    assert await a.in_flight() == {1: 1}  # Redis gave it the slot; the caller will never hear of it
    acquiring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await acquiring

    await eventually_in_flight(a, {})
    await a.heartbeat()
    assert view.backends[0].in_flight == 0 and a.user_in_flight(5) == 0
    lease = await a.try_acquire(view.backends, user_id=5)
    assert lease is not None
    a.release(lease)


async def test_an_acquire_reaching_redis_after_its_cancellation_takes_nothing(fleet: Fleet) -> None:
    a, view = await fleet.worker(slots=1)
    client = a._resp
    real, arrive, on_the_wire = client.evalsha, asyncio.Event(), asyncio.Queue[asyncio.Task[Any]]()

    async def slow_network(*args: Any, **kwargs: Any) -> Any:
        del client.evalsha

        async def later() -> Any:
            await arrive.wait()
            return await real(*args, **kwargs)

        on_the_wire.put_nowait(asyncio.create_task(later()))
        await asyncio.Event().wait()

    client.evalsha = slow_network  # type: ignore[method-assign]
    acquiring = asyncio.create_task(a.try_acquire(view.backends, user_id=None))
    late = await on_the_wire.get()
    acquiring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await acquiring
    leases, marks = fleet.key(f'leases:{a.worker_id}'), fleet.key(f'cut:{a.worker_id}:*')
    deadline = time.monotonic() + 3
    while not [key async for key in fleet.redis.scan_iter(marks)]:  # the release went first and left its mark
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    [mark] = [key async for key in fleet.redis.scan_iter(marks)]
    assert 0 < await fleet.redis.pttl(mark) <= 60_000  # it goes by itself should the acquire never come
    assert await fleet.redis.hlen(leases) == 0

    arrive.set()
    assert (await late)[0] is None  # {no backend, no tag}
    assert await a.in_flight() == {}
    assert not await fleet.redis.exists(mark)  # the mark is gone with it


async def test_per_user_counts_add_up_across_workers(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=4)
    b, view_b = await fleet.worker(slots=4)
    lease_a = await a.try_acquire(view_a.backends, user_id=7)
    lease_b = await b.try_acquire(view_b.backends, user_id=7)
    other = await b.try_acquire(view_b.backends, user_id=8)
    assert lease_a is not None and lease_b is not None and other is not None
    assert a.user_in_flight(7) == 1  # its own, until a heartbeat reads the fleet's

    await a.heartbeat()
    assert a.user_in_flight(7) == 2 and a.user_in_flight(8) == 1

    b.release(lease_b)
    await eventually_in_flight(a, {1: 2})
    await a.heartbeat()
    await b.heartbeat()
    assert a.user_in_flight(7) == b.user_in_flight(7) == 1
    for ledger, lease in ((a, lease_a), (b, other)):
        ledger.release(lease)
    await eventually_in_flight(a, {})
    await a.heartbeat()
    assert a.user_in_flight(7) == a.user_in_flight(8) == 0


async def test_with_redis_unreachable_a_worker_admits_on_its_own_counts(fleet: Fleet,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    view = RegistryView()
    view.replace([backend(slots=2)])
    ledger = RedisLedger.from_url('redis://127.0.0.1:1/0', view, prefix=fleet.prefix)
    freed: list[None] = []
    ledger.on_freed(lambda: freed.append(None))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger='mindrouter.scheduler'):
        await ledger.start()
        try:
            first = await ledger.try_acquire(view.backends, user_id=1)
            second = await ledger.try_acquire(view.backends, user_id=1)
            assert first is not None and second is not None
            assert await ledger.try_acquire(view.backends, user_id=1) is None  # max_concurrent still holds
            assert ledger.user_in_flight(1) == 2 and await ledger.in_flight() == {1: 2}

            ledger.release(first)
            assert freed and view.backends[0].in_flight == 1  # waiters here look again at once
            third = await ledger.try_acquire(view.backends, user_id=1)
            assert third is not None
            ledger.release(second)
            ledger.release(third)
            assert view.backends[0].in_flight == 0 and ledger.user_in_flight(1) == 0
        finally:
            await ledger.stop()
    assert time.monotonic() - started < 3  # nobody waited on the dead server for long
    assert sum('Redis unreachable' in r.getMessage() for r in caplog.records) == 1  # once per outage


async def test_with_redis_unreachable_the_picker_still_queues_and_hands_over(fleet: Fleet) -> None:
    view = RegistryView()
    view.replace([backend(slots=1)])
    ledger = RedisLedger.from_url('redis://127.0.0.1:1/0', view, prefix=fleet.prefix)
    await ledger.start()
    try:
        picker = FairScheduler(view, ledger, queue_timeout=3.0)
        held = await picker.acquire('m')
        waiting = asyncio.create_task(picker.acquire('m'))
        await asyncio.sleep(0.05)
        assert picker.waiting == 1 and not waiting.done()
        held.release()
        slot = await asyncio.wait_for(waiting, 2)
        assert view.backends[0].in_flight == 1
        slot.release()
        assert view.backends[0].in_flight == 0
    finally:
        await ledger.stop()


async def test_a_queued_request_granted_during_an_outage_leaves_the_fleets_queue(fleet: Fleet) -> None:
    a, view = await fleet.worker(slots=1)
    picker = FairScheduler(view, a, queue_timeout=3.0)
    held = await picker.acquire('m', requester=Requester(user_id=1))
    waiting = asyncio.create_task(picker.acquire('m', requester=Requester(user_id=2)))
    await asyncio.sleep(0.1)
    assert await fleet.redis.zcard(fleet.key('queue:m')) == 1  # every worker sees it waiting

    real = a._resp.evalsha

    async def acquire_unreachable(script: Script, keys: Sequence[str], args: Sequence[Any]) -> object:
        if script is a._acquire:  # admission cannot reach Redis; releases still can
            raise RespConnectionError('connection refused')
        return await real(script, keys, args)

    a._resp.evalsha = acquire_unreachable  # type: ignore[method-assign]
    held.release()
    slot = await asyncio.wait_for(waiting, 2)  # granted on this worker's own counts
    deadline = time.monotonic() + 3
    while await fleet.redis.zcard(fleet.key('queue:m')):  # and taken out of the fleet's queue once Redis answers
        assert time.monotonic() < deadline, 'a stale entry would hold other workers back'
        await asyncio.sleep(0.02)
    a._resp.evalsha = real  # type: ignore[method-assign]
    slot.release()


async def test_a_worker_that_shuts_down_gives_its_slots_back(fleet: Fleet) -> None:
    a, _ = await fleet.worker(slots=2)
    b, view_b = await fleet.worker(slots=2)
    held = [await b.try_acquire(view_b.backends, user_id=2) for _ in range(2)]
    assert await a.in_flight() == {1: 2}

    await b.stop()
    fleet.running.remove(b)
    assert await a.in_flight() == {}
    assert not await fleet.redis.exists(fleet.key(f'leases:{b.worker_id}'), fleet.key(f'alive:{b.worker_id}'))
    for lease in held:  # requests still finishing after shutdown release without complaint
        assert lease is not None
        b.release(lease)


async def test_a_request_queued_on_one_worker_gets_the_slot_another_worker_frees(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=1)
    b, view_b = await fleet.worker(slots=1)
    picker_a = FairScheduler(view_a, a, queue_timeout=5.0)
    picker_b = FairScheduler(view_b, b, queue_timeout=5.0)
    held = await picker_b.acquire('m', requester=Requester(user_id=1))

    waiting = asyncio.create_task(picker_a.acquire('m', requester=Requester(user_id=2)))
    await asyncio.sleep(0.2)
    assert picker_a.waiting == 1 and not waiting.done()  # worker A alone sees a free backend; the fleet does not

    started = time.monotonic()
    held.release()
    slot = await asyncio.wait_for(waiting, 4)
    assert time.monotonic() - started < 2  # pub/sub woke it, not a heartbeat (10 s apart)
    assert slot.backend is view_a.backends[0]
    assert await a.in_flight() == {1: 1}
    slot.release()
    await eventually_in_flight(a, {})


async def test_the_fleet_serves_the_lowest_tag_first_whichever_worker_holds_it(fleet: Fleet) -> None:
    a, view_a = await fleet.worker(slots=1)
    b, view_b = await fleet.worker(slots=1)
    flood_worker, newcomer_worker = FairScheduler(view_a, a, queue_timeout=5.0), FairScheduler(view_b, b,
                                                                                                queue_timeout=5.0)
    flooder, newcomer = Requester(user_id=1, cost=500), Requester(user_id=2, cost=500)
    held = await flood_worker.acquire('m', requester=flooder)
    backlog = [asyncio.create_task(flood_worker.acquire('m', requester=flooder)) for _ in range(3)]
    await asyncio.sleep(0.1)
    question = asyncio.create_task(newcomer_worker.acquire('m', requester=newcomer))
    await asyncio.sleep(0.2)
    snapshot = await newcomer_worker.snapshot()
    deficits = {user.user_id: user.deficit_tokens for user in snapshot.users}
    assert deficits[2] < deficits[1]  # the fleet's clock: the flooder is ahead of its share, the newcomer behind

    # The flooder's worker frees the slot and looks at its own queue first, at once; the newcomer's worker
    # hears of it over pub/sub, later. The slot still goes to the lowest tag in the fleet: the newcomer's.
    held.release()
    slot = await asyncio.wait_for(question, 3)
    assert slot.requester.user_id == 2 and not any(task.done() for task in backlog)
    slot.release()
    for task in backlog:  # then the flood's backlog, one at a time
        (await asyncio.wait_for(task, 3)).release()
    await eventually_in_flight(a, {})


async def test_a_burst_on_three_workers_never_exceeds_the_limit_and_leaks_nothing(
        fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    workers = [await fleet.worker(slots=5, from_url=True) for _ in range(3)]
    pickers = [FairScheduler(view, ledger, queue_timeout=5.0) for ledger, view in workers]
    observer = workers[0][0]
    peak = 0
    rng = random.Random(7)

    async def request(i: int) -> None:
        nonlocal peak
        slot = await pickers[i % 3].acquire('m', requester=Requester(user_id=i % 4))
        try:
            peak = max(peak, (await observer.in_flight()).get(1, 0))
            await asyncio.sleep(rng.random() * 0.01)
        finally:
            slot.release()

    with caplog.at_level(logging.WARNING, logger='mindrouter.scheduler'):
        requests = [asyncio.create_task(request(i)) for i in range(300)]
        for _ in range(40):  # clients that go away, queued or mid-acquire
            await asyncio.sleep(0.003)
            rng.choice(requests).cancel()
        results = await asyncio.gather(*requests, return_exceptions=True)
        await eventually_in_flight(observer, {})

    assert 0 < peak <= 5
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    assert not caplog.records  # never fell back to local counts
    assert all(view.backends[0].in_flight == 0 for _, view in workers)
    for ledger, _ in workers:
        await ledger.heartbeat()
        assert all(ledger.user_in_flight(user) == 0 for user in range(4))


# The hot path's own client (core.scheduler.resp) against the real server.


@pytest.fixture
async def resp(redis_url: str) -> AsyncIterator[RespClient]:
    client = RespClient.from_url(redis_url)
    try:
        yield client
    finally:
        await client.close()


async def test_resp_evalsha_loads_a_script_redis_does_not_know(resp: RespClient, redis_url: str) -> None:
    script = Script(f"return {{KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1, false}} -- {uuid.uuid4().hex}")
    assert await resp.execute('SCRIPT', 'EXISTS', script.sha) == [0]  # a fresh source: NOSCRIPT guaranteed
    assert await resp.evalsha(script, ['k'], ['v', 41]) == ['k', 'v', 42, None]  # Lua's false: a nil bulk string
    assert await resp.execute('SCRIPT', 'EXISTS', script.sha) == [1]
    assert await resp.evalsha(script, ['k'], ['w', 1]) == ['k', 'w', 2, None]
    with pytest.raises(RespError, match='NOSCRIPT'):  # other errors are not retried or hidden
        await resp.execute('EVALSHA', '0' * 40, 0)
    broken = Script(f"return redis.call('NOSUCHCOMMAND') -- {uuid.uuid4().hex}")
    with pytest.raises(RespError, match=r'(?i)unknown (redis )?command'):
        await resp.evalsha(broken, [], [])
    assert await resp.execute('PING') == 'PONG'  # an error reply leaves the connection in step


async def test_resp_pipelines_a_thousand_concurrent_calls_on_one_connection(resp: RespClient) -> None:
    key = f'mrtest-resp-{uuid.uuid4().hex}'
    connection = await resp.execute('CLIENT', 'ID')
    try:
        calls = [resp.execute('INCR', key) if i % 2 else resp.execute('ECHO', f'call {i}') for i in range(1000)]
        replies = await asyncio.gather(*calls)
        assert replies == [(i + 1) // 2 if i % 2 else f'call {i}' for i in range(1000)]  # each its own, in order
        assert await resp.execute('CLIENT', 'ID') == connection
        assert await resp.execute('HGETALL', key + ':none') == [] and await resp.execute('GET', key + ':none') is None
    finally:
        await resp.execute('DEL', key)


async def test_resp_selects_the_database_of_the_url(redis_url: str) -> None:
    key = f'mrtest-resp-{uuid.uuid4().hex}'
    client, other = RespClient.from_url(redis_url.rsplit('/', 1)[0] + '/3'), redis.Redis.from_url(redis_url)
    try:
        assert await client.execute('SET', key, 'in db 3', 'EX', 60) == 'OK'
        assert await other.get(key) is None
        assert await other.execute_command('SELECT', 3) and await other.get(key) == b'in db 3'
        await other.delete(key)
    finally:
        await client.close()
        await other.aclose()


async def test_resp_fails_pending_calls_when_the_server_drops_it_and_then_reconnects(resp: RespClient,
                                                                                     redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    try:
        first = await resp.execute('CLIENT', 'ID')
        blocked = asyncio.create_task(resp.execute('BLPOP', f'mrtest-resp-{uuid.uuid4().hex}', 5))
        queued = asyncio.create_task(resp.execute('PING'))  # behind the blocked call, on the same connection
        await asyncio.sleep(0.05)
        assert await admin.client_kill_filter(_id=first) == 1
        for call in (blocked, queued):
            with pytest.raises(RespConnectionError):
                await asyncio.wait_for(call, 2)
        second = await resp.execute('CLIENT', 'ID')
        assert second != first
    finally:
        await admin.aclose()


async def test_resp_times_out_on_a_call_that_gets_no_reply(redis_url: str) -> None:
    client = RespClient.from_url(redis_url, timeout=0.2)
    try:
        first = await client.execute('CLIENT', 'ID')
        started = time.monotonic()
        with pytest.raises(RespTimeoutError):
            await client.execute('BLPOP', f'mrtest-resp-{uuid.uuid4().hex}', 5)
        assert time.monotonic() - started < 1
        assert await client.execute('CLIENT', 'ID') != first  # the old connection was closed with the call
    finally:
        await client.close()


async def test_a_ledger_whose_resp_connection_is_killed_reconnects_without_an_outage(
        fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    a, view = await fleet.worker(slots=2)
    with caplog.at_level(logging.WARNING, logger='mindrouter.scheduler'):
        lease = await a.try_acquire(view.backends, user_id=None)
        assert lease is not None
        connection = await a._resp.execute('CLIENT', 'ID')
        assert await fleet.redis.client_kill_filter(_id=connection) == 1
        await asyncio.sleep(0.05)  # the ledger's client has seen the connection go
        a.release(lease)
        await eventually_in_flight(a, {})
        again = await a.try_acquire(view.backends, user_id=None)
        assert again is not None and await a.in_flight() == {1: 1}  # counted in Redis: not a local fallback
        a.release(again)
        await eventually_in_flight(a, {})
    assert not caplog.records
